"""The rule of local/: dev tooling is never imported by the code location (DESIGN.md, "Layout")."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

from coin_platform.settings import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "coin_platform"
LOCAL = "coin_platform.local"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported_modules(source: str, package: str) -> set[str]:
    """Every module `source` (a module of `package`) imports: relative imports resolved,
    `from a import b` counted as a.b too."""
    package_parts = package.split(".")
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package_parts[: len(package_parts) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def _local_imports(source: str, package: str) -> list[str]:
    return sorted(m for m in _imported_modules(source, package) if m == LOCAL or m.startswith(f"{LOCAL}."))


def _imports_of_local(paths: list[Path]) -> dict[str, list[str]]:
    offending = {}
    for path in paths:
        module = _module_name(path)
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        local = _local_imports(path.read_text(), package)
        if local:
            offending[str(path.relative_to(PROJECT_ROOT))] = local
    return offending


def test_the_code_location_imports_no_dev_tooling(tmp_path):
    """`dagster dev` loads coin_platform.definitions: building it must leave coin_platform.local unloaded."""
    script = (
        "import json, sys\n"
        "import coin_platform.definitions as location\n"
        "assert location.defs.get_repository_def().get_all_jobs()\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m == {LOCAL!r} or m.startswith({LOCAL + '.'!r}))))\n"
    )
    env = {**os.environ, "COIN_CONFIG": str(PROJECT_ROOT / "config.yaml"), "COIN_HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == []


def test_no_module_of_the_dagster_layer_imports_dev_tooling():
    paths = [PACKAGE / "definitions.py", *sorted((PACKAGE / "defs").rglob("*.py"))]
    assert len(paths) > 10
    assert _imports_of_local(paths) == {}


def test_no_production_module_imports_dev_tooling():
    """Stricter than the rule: nothing outside local/ imports it, so nothing the location loads can."""
    paths = [path for path in sorted(PACKAGE.rglob("*.py")) if (PACKAGE / "local") not in path.parents]
    assert _imports_of_local(paths) == {}


def test_the_scan_sees_local_imports_in_every_form():
    """The scanner itself: absolute, from-package and relative imports of local/ are all caught."""
    cases = {
        "import coin_platform.local.stack\n": True,
        "from coin_platform.local.replay import ReplayServer\n": True,
        "from coin_platform import local\n": True,
        "from ..local import cli\n": True,
        "def f():\n    from coin_platform.local.dev import prepare_dagster_home\n": True,
        "from coin_platform import settings\n": False,
        "from .partitions import market_partitions\n": False,
        "from ..localisation import x\n": False,
    }
    for source, caught in cases.items():
        assert bool(_local_imports(source, "coin_platform.defs")) is caught, source
