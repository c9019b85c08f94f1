"""build_strategies: config entries -> strategy objects, filtered by enabled and interval, errors naming the key."""

from __future__ import annotations

import pytest

from coin_platform.settings import PROJECT_ROOT, STRATEGY_KINDS, ConfigError, StrategyConfig, load_config
from coin_platform.strategies import (
    STRATEGY_CLASSES,
    EmaCrossover,
    MacdCrossover,
    RsiReversal,
    VolumeZoneBreakout,
    build_strategies,
    build_strategy,
)

CONFIGS = [
    StrategyConfig(name="rsi_fast", kind="rsi_reversal", intervals=("1m",), params={"period": 7, "oversold": 20}),
    StrategyConfig(name="ema_hourly", kind="ema_crossover", intervals=("15m", "1h"), params={"fast": 9, "slow": 21}),
    StrategyConfig(name="macd_everywhere", kind="macd_crossover"),
    StrategyConfig(name="zones_off", kind="volume_zone_breakout", enabled=False),
]


def test_every_configurable_kind_has_a_class():
    assert set(STRATEGY_CLASSES) == set(STRATEGY_KINDS)


def test_params_fill_the_fields_and_defaults_the_rest():
    rsi, ema, macd = build_strategies(CONFIGS)
    assert rsi == RsiReversal(name="rsi_fast", intervals=("1m",), period=7, oversold=20)
    assert rsi.overbought == 70
    assert ema == EmaCrossover(name="ema_hourly", intervals=("15m", "1h"), fast=9, slow=21)
    assert macd == MacdCrossover(name="macd_everywhere")


@pytest.mark.parametrize(
    ("interval", "names"),
    [
        (None, ["rsi_fast", "ema_hourly", "macd_everywhere"]),
        ("1m", ["rsi_fast", "macd_everywhere"]),
        ("1h", ["ema_hourly", "macd_everywhere"]),
        ("15M", ["ema_hourly", "macd_everywhere"]),  # the loader's spelling works too
        ("4h", ["macd_everywhere"]),
    ],
)
def test_only_enabled_strategies_for_the_interval(interval, names):
    assert [s.name for s in build_strategies(CONFIGS, interval)] == names


def test_disabled_and_other_interval_entries_are_still_validated():
    off = StrategyConfig(name="off", kind="rsi_reversal", enabled=False, params={"period": 0})
    with pytest.raises(ConfigError, match=r"strategies\.off\.params\.period: must be an integer >= 2"):
        build_strategies([off])
    hourly = StrategyConfig(name="hourly", kind="ema_crossover", intervals=("1h",), params={"fast": 60})
    with pytest.raises(ConfigError, match=r"strategies\.hourly\.params\.fast: must be less than slow"):
        build_strategies([hourly], "1m")


def test_unknown_param_names_the_key_and_the_known_ones():
    config = StrategyConfig(name="zones", kind="volume_zone_breakout", params={"volume_windw": 30})
    with pytest.raises(
        ConfigError,
        match=r"strategies\.zones\.params\.volume_windw: unknown parameter of volume_zone_breakout "
        r"\(expected one of can_short, volume_window, volume_ratio\)",
    ):
        build_strategies([config])


def test_bad_value_names_the_key():
    config = StrategyConfig(name="rsi", kind="rsi_reversal", params={"overbought": 20})
    with pytest.raises(ConfigError, match=r"strategies\.rsi\.params\.oversold: must be less than overbought \(20\)"):
        build_strategies([config])


def test_the_shipped_config_builds():
    configs = load_config(PROJECT_ROOT / "config.yaml").strategies
    strategies = build_strategies(configs)
    assert [s.name for s in strategies] == [c.name for c in configs if c.enabled]
    assert {type(s) for s in strategies} <= {RsiReversal, EmaCrossover, MacdCrossover, VolumeZoneBreakout}
    for interval in ("1m", "15m", "1h"):
        expected = [c.name for c in configs if c.enabled and (not c.intervals or interval in c.intervals)]
        assert [s.name for s in build_strategies(configs, interval)] == expected


def test_can_short_false_keeps_a_strategy_long_only():
    from coin_platform_tests.strategies.references import random_walk_features

    frame = random_walk_features(3_000, seed=7)
    both = build_strategy(StrategyConfig(name="rsi", kind="rsi_reversal"))
    long_only = build_strategy(StrategyConfig(name="rsi", kind="rsi_reversal", params={"can_short": False}))
    full, longs = both.signals(frame), long_only.signals(frame)
    assert full["enter_short"].any() and full["exit_short"].any()
    assert not longs["enter_short"].any() and not longs["exit_short"].any()
    assert longs["enter_long"].equals(full["enter_long"]) and longs["exit_long"].equals(full["exit_long"])
    with pytest.raises(ConfigError, match=r"strategies\.rsi\.params\.can_short: must be true or false"):
        build_strategy(StrategyConfig(name="rsi", kind="rsi_reversal", params={"can_short": 1}))
