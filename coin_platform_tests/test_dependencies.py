"""Every third-party package the code location imports is declared in pyproject.toml."""

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import coin_platform

PACKAGE = Path(coin_platform.__file__).parent
PYPROJECT = PACKAGE.parent / "pyproject.toml"
# Installed with a package we declare and pinned by it; importing them directly is their documented use.
COMES_WITH = {"botocore": "boto3"}


def _imported_top_levels() -> set[str]:
    names = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n not in ("coin_platform", "__future__")}


def _declared() -> set[str]:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    requirements = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    return {re.split(r"[\[<>=!~ ;]", r, maxsplit=1)[0].lower().replace("_", "-") for r in requirements}


def test_every_import_is_declared():
    distributions = importlib.metadata.packages_distributions()
    declared = _declared()
    undeclared = {}
    for name in sorted(_imported_top_levels()):
        if name in COMES_WITH:
            assert COMES_WITH[name] in declared
            continue
        owners = {d.lower().replace("_", "-") for d in distributions.get(name, [])}
        if not owners & declared:
            undeclared[name] = sorted(owners)
    assert undeclared == {}
