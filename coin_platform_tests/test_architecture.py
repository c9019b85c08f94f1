"""The rule of the layout, as the README's Architecture section states it: dependencies never point up.

Each room of the package may import only the rooms listed for it (and the standard library and
third-party packages). `core` imports nothing of the project; the Dagster layer (`defs`,
`definitions`) sits on top, and `local` (dev tooling) is imported by nobody. Domain code, the
client and the API import no Dagster: `client` speaks to a Dagster deployment over its GraphQL
API with dagster_graphql, which is that API's client, not the Dagster layer.
"""

import ast
from collections import defaultdict
from pathlib import Path

import coin_platform

PACKAGE = Path(coin_platform.__file__).parent
DOMAIN = {"core", "settings", "ops", "binance", "indicators", "market", "features", "events", "strategies", "storage",
          "ml", "trading", "loader", "pipeline", "backtest", "backup", "health"}
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "ops": set(),
    "indicators": set(),
    "binance": {"core"},
    "settings": {"core", "ops"},
    "market": {"core", "binance"},
    "features": {"core", "indicators"},
    "events": {"core", "settings", "features", "strategies"},
    "strategies": {"core", "settings", "features", "indicators"},
    "storage": {"core", "settings", "market", "features", "events"},
    "ml": {"core", "settings", "events", "features", "storage"},
    "trading": {"core", "settings", "binance", "market", "events"},
    "loader": {"core", "settings", "market", "storage"},
    # Backtests run the live code: strategies, features, the scorer, the risk guard and the paper broker.
    "backtest": {"core", "settings", "market", "features", "indicators", "strategies", "events", "ml", "trading"},
    # The warehouse step reads the trading store's orders and fills (pipeline/warehouse.py).
    "pipeline": {"core", "settings", "market", "features", "strategies", "storage", "events", "trading"},
    # The public backtest client: Dagster's GraphQL API through dagster_graphql (see the module docstring);
    # it sends backtest's own request model (backtest.request, which loads no engine).
    "client": {"core", "settings", "backtest"},
    # `coin health` and GET /health: every store and the broker, through their own readers.
    "health": {"core", "settings", "events", "storage", "trading"},
    # The HTTP API: checks a request as the run will (backtest's request resolution), launches it through
    # the client, reads the run's outputs from storage; its server and access logs are JSON lines (ops.logs).
    "api": {"core", "settings", "ops", "storage", "strategies", "backtest", "client", "health"},
    # Backups copy the stores through storage's own locks and clients (the trading store's lock is a file path).
    "backup": {"storage"},
    "defs": DOMAIN,
    "definitions": DOMAIN | {"defs"},
    "local": DOMAIN | {"defs", "definitions", "api"},
}
# The Dagster layer and dev tooling build on Dagster; everything else stays plain Python.
DAGSTER_ROOMS = {"defs", "definitions", "local"}
DAGSTER_CLIENTS = {"client": {"dagster_graphql"}}


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


def _third_party_by_room() -> dict[str, set[str]]:
    found: dict[str, set[str]] = defaultdict(set)
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found[_room(path)].update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found[_room(path)].add(node.module.split(".")[0])
    return found


def test_only_the_dagster_layer_and_dev_tooling_import_dagster():
    dagster = {
        room: sorted(name for name in names if name.startswith("dagster") and name not in DAGSTER_CLIENTS.get(room, ()))
        for room, names in _third_party_by_room().items()
        if room not in DAGSTER_ROOMS
    }
    assert {room: names for room, names in dagster.items() if names} == {}


def test_dependencies_never_point_up():
    upward = {room: sorted(imported - ALLOWED[room]) for room, imported in _imports_by_room().items()}
    assert {room: names for room, names in upward.items() if names} == {}


def test_benches_import_no_test_code():
    """`make bench` runs the scripts with the project installed, without the tests on the path."""
    from_tests = {
        path.name: sorted(module for module in _imported_modules(path) if module.split(".")[0] == "coin_platform_tests")
        for path in (PACKAGE.parent / "bench").glob("*.py")
    }
    assert {name: modules for name, modules in from_tests.items() if modules} == {}


def _imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module)
    return modules
