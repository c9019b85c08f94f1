"""A backtest request: defaults from config.yaml, every bad value named as backtest.<field>."""

import datetime as dt

import pytest

from coin_platform.backtest.request import parse_request, resolve_request
from coin_platform.settings import ConfigError, PlatformConfig

TODAY = dt.date(2025, 6, 10)
CONFIG = PlatformConfig.model_validate(
    {
        "symbols": ["BTCUSDT", "ETHUSDT"],
        "history_start": "2025-01-01",
        "strategies": [{"name": "ema", "kind": "ema_crossover"}],
        "trading": {"fee_rate": 0.0004, "slippage_rate": 0.0001, "order_notional_usdt": 250},
        "backtest": {"interval": "1h", "days": 30, "leverage": 3},
    }
)


def test_an_empty_request_is_the_configured_defaults():
    resolved = resolve_request(parse_request({}), "ema", CONFIG, TODAY)
    assert resolved.symbols == ("BTCUSDT", "ETHUSDT") and resolved.interval == "1h"
    assert (resolved.start, resolved.end) == (dt.date(2025, 5, 11), dt.date(2025, 6, 9))
    assert (resolved.fee, resolved.slippage, resolved.leverage, resolved.notional) == (0.0004, 0.0001, 3.0, 250.0)
    assert resolved.range_end == dt.datetime(2025, 6, 9, 23, 59, 59, 999000, tzinfo=dt.UTC)


def test_given_values_win_and_the_range_never_starts_before_the_history():
    request = parse_request({"symbols": ["ETHUSDT"], "interval": "15m", "end": "2025-01-10", "leverage": 1, "fee": 0})
    resolved = resolve_request(request, "ema", CONFIG, TODAY)
    assert (resolved.symbols, resolved.interval, resolved.leverage, resolved.fee) == (("ETHUSDT",), "15m", 1.0, 0.0)
    assert resolved.start == dt.date(2025, 1, 1)


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"leverage": 200}, "backtest.leverage"),
        ({"stop_loss": 1.0}, "backtest.stop_loss"),
        ({"fee": -0.001}, "backtest.fee"),
        ({"fraction": float("nan")}, "backtest.fraction"),
        ({"sizing": "martingale"}, "backtest.sizing"),
        ({"start": "2025-02-30"}, "backtest.start"),
        ({"symbols": []}, "backtest.symbols"),
        ({"colour": "red"}, "backtest.colour"),
        ({"symbols": ["ethusdt"]}, "backtest.symbols"),
        ({"interval": "15M"}, "backtest.interval"),
        ({"interval": "7m"}, "backtest.interval"),
        ({"leverage": "2"}, "backtest.leverage"),
    ],
)
def test_a_bad_value_is_named(values, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        parse_request(values)


@pytest.mark.parametrize(
    ("values", "strategy", "field"),
    [
        ({"symbols": ["DOGEUSDT"]}, "ema", "backtest.symbols"),
        ({"end": "2025-06-11"}, "ema", "backtest.end"),
        ({"end": "0001-01-01"}, "ema", "backtest.end"),
        ({"start": "2025-06-05", "end": "2025-06-01"}, "ema", "backtest.start"),
        ({}, "nope", "backtest.strategy"),
    ],
)
def test_what_depends_on_the_config_or_the_date_is_named(values, strategy, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        resolve_request(parse_request(values), strategy, CONFIG, TODAY)
