"""core/ holds pure values: no I/O, and no import of any other part of the project."""

import ast
from pathlib import Path

import pytest

import coin_platform.core
from coin_platform.core.intervals import UnknownIntervalError, interval_ms, normalize_interval
from coin_platform.core.signals import SIDE_OF_SIGNAL, SIGNALS
from coin_platform.core.symbols import is_binance_symbol

CORE = Path(coin_platform.core.__file__).parent


@pytest.mark.parametrize("module", sorted(CORE.glob("*.py")), ids=lambda p: p.name)
def test_core_imports_nothing_of_the_project(module):
    tree = ast.parse(module.read_text())
    imported = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    imported += [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    assert not [name for name in imported if name.startswith("coin_platform")]


def test_intervals_accept_both_spellings():
    assert normalize_interval("1H") == "1h" and normalize_interval("15M") == "15m"
    assert interval_ms("1m") == 60_000
    with pytest.raises(UnknownIntervalError, match="unknown interval '7m'"):
        normalize_interval("7m")


def test_every_signal_has_a_side():
    assert set(SIDE_OF_SIGNAL) == set(SIGNALS)
    assert {SIDE_OF_SIGNAL[s] for s in ("enter_long", "exit_short")} == {"buy"}


@pytest.mark.parametrize(("text", "valid"), [("BTCUSDT", True), ("1000PEPEUSDT", True), ("btcusdt", False),
                                             ("BTC_KRW", False), ("B", False), ("A" * 31, False)])
def test_binance_symbols(text, valid):
    assert is_binance_symbol(text) is valid
