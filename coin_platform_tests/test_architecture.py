"""The rule of the layout, as the README's Architecture section states it: dependencies never point up.

Each room of the package may import only the rooms listed for it (and the standard library and
third-party packages). `core` imports nothing of the project; the Dagster layer (`defs`,
`definitions`) sits on top, and `local` (dev tooling) is imported by nobody.
"""

import ast
from collections import defaultdict
from pathlib import Path

import coin_platform

PACKAGE = Path(coin_platform.__file__).parent
DOMAIN = {"core", "settings", "ops", "binance", "indicators", "market", "features", "events", "strategies", "storage",
          "ml", "trading", "loader", "pipeline", "backtest"}
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "ops": set(),
    "indicators": set(),
    "binance": {"core"},
    "settings": {"core", "ops"},
    "market": {"core", "binance"},
    "features": {"core", "indicators"},
    "events": {"core", "settings"},
    "strategies": {"core", "settings", "features", "indicators"},
    "storage": {"core", "settings", "market", "features", "events"},
    "ml": {"core", "events"},
    "trading": {"core", "settings", "binance", "market", "events"},
    "loader": {"core", "settings", "market", "storage"},
    "pipeline": {"core", "settings", "market", "features", "strategies", "storage", "events"},
    "backtest": {"core", "settings", "indicators", "features", "strategies"},
    "defs": DOMAIN,
    "definitions": DOMAIN | {"defs"},
    "local": DOMAIN | {"defs", "definitions"},
}


def _room(path: Path) -> str:
    parts = path.relative_to(PACKAGE).parts
    return parts[0].removesuffix(".py")


def _imports_by_room() -> dict[str, set[str]]:
    found: dict[str, set[str]] = defaultdict(set)
    for path in PACKAGE.rglob("*.py"):
        room = _room(path)
        for node in ast.walk(ast.parse(path.read_text())):
            modules = []
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            for module in modules:
                parts = module.split(".")
                if parts[0] == "coin_platform" and len(parts) > 1 and parts[1] != room:
                    found[room].add(parts[1])
    return found


def test_every_room_is_in_the_table():
    rooms = {_room(p) for p in PACKAGE.rglob("*.py")} - {"__init__"}
    assert rooms == set(ALLOWED)


def test_dependencies_never_point_up():
    upward = {room: sorted(imported - ALLOWED[room]) for room, imported in _imports_by_room().items()}
    assert {room: names for room, names in upward.items() if names} == {}
