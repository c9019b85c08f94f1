"""The backtest domain's asset modules share their helpers through the domain's shared modules, never by one
asset module importing another (an asset's module changes for its asset alone)."""

import ast
from pathlib import Path

import coin_platform.defs.backtest as backtest_defs

DOMAIN = Path(backtest_defs.__file__).parent
PACKAGE = "coin_platform.defs.backtest"


def _asset_modules() -> set[str]:
    return {
        path.stem
        for path in DOMAIN.glob("*.py")
        if any(
            isinstance(node, ast.Attribute) and node.attr == "asset" for node in ast.walk(ast.parse(path.read_text()))
        )
    }


def test_asset_modules_import_no_other_asset_module():
    assets = _asset_modules()
    assert {"reports", "sweep", "parity"} <= assets
    reaching = {}
    for name in sorted(assets):
        tree = ast.parse((DOMAIN / f"{name}.py").read_text())
        imported = {
            node.module.removeprefix(f"{PACKAGE}.")
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(f"{PACKAGE}.")
        }
        if imported & (assets - {name}):
            reaching[name] = sorted(imported & assets)
    assert reaching == {}
