"""Built-in strategies: parity with an independent TA-Lib/numpy reference, crafted cases, reuse, validation."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from coin_platform.core.signals import SIGNALS
from coin_platform.features import compute_features
from coin_platform.settings import ConfigError
from coin_platform.strategies import EmaCrossover, MacdCrossover, RsiReversal, Strategy, VolumeZoneBreakout
from coin_platform_tests.shared_data import lean_minute_bars
from coin_platform_tests.strategies.references import START, random_walk_features, reference_signals

ADA_1M = "binance/lean/cryptofuture/minute/adausdt/20221213_trade.zip"

STORED_PARAMS = [
    RsiReversal(name="rsi"),
    EmaCrossover(name="ema"),
    MacdCrossover(name="macd"),
    VolumeZoneBreakout(name="zones"),
]
OTHER_PARAMS = [
    RsiReversal(name="rsi_9", period=9, oversold=25, overbought=75.5),
    EmaCrossover(name="ema_8_21", fast=8, slow=21),
    MacdCrossover(name="macd_5_35_5", fast=5, slow=35, signal=5),
    VolumeZoneBreakout(name="zones_10", volume_window=10, volume_ratio=2.0),
]
ALL = STORED_PARAMS + OTHER_PARAMS
FEATURE_INDICATORS = ["rsi_14", "ema_20", "ema_50", "macd", "macd_signal", "macd_hist"]


def fired(frame: pl.DataFrame, signal: str) -> list[int]:
    return frame.with_row_index().filter(signal)["index"].to_list()


def assert_matches_reference(strategy: Strategy, features: pl.DataFrame) -> None:
    out = strategy.signals(features)
    expected = reference_signals(strategy, features)
    for signal in SIGNALS:
        assert out[signal].null_count() == 0
        np.testing.assert_array_equal(out[signal].to_numpy(), expected[signal], err_msg=f"{strategy.name} {signal}")
        assert expected[signal].any(), f"{strategy.name} {signal} never fires: the comparison proves nothing"


@pytest.mark.parametrize("strategy", ALL, ids=lambda s: s.name)
@pytest.mark.parametrize("seed", [1, 2])
def test_random_walk_matches_reference(strategy, seed):
    assert_matches_reference(strategy, random_walk_features(3_000, seed))


@pytest.fixture(scope="module")
def ada_features() -> pl.DataFrame:
    return compute_features(lean_minute_bars(ADA_1M, dt.date(2022, 12, 13)), "1m")


@pytest.mark.parametrize("strategy", ALL, ids=lambda s: s.name)
def test_real_minutes_match_reference(strategy, ada_features):
    assert ada_features.height == 1440
    assert_matches_reference(strategy, ada_features)


@pytest.mark.parametrize("strategy", STORED_PARAMS[:3], ids=lambda s: s.name)
def test_reusing_stored_features_equals_recomputing_from_close(strategy):
    features = random_walk_features(2_000, seed=3)
    bare = features.drop(FEATURE_INDICATORS)
    assert_frame_equal(strategy.signals(features).drop(FEATURE_INDICATORS), strategy.signals(bare))


def test_stored_rsi_column_is_what_the_rule_reads():
    features = random_walk_features(200, seed=4)
    planted = np.full(features.height, 50.0)
    planted[100], planted[101] = 20.0, 40.0  # up through 30 on row 101, nowhere else
    features = features.with_columns(rsi_14=pl.Series(planted))
    assert fired(RsiReversal(name="rsi").signals(features), "enter_long") == [101]
    # Period 13 has no stored column: it computes RSI from close and never sees the planted values.
    assert 101 not in fired(RsiReversal(name="rsi_13", period=13).signals(features), "enter_long")


def _frame(close: np.ndarray, volume: np.ndarray | None = None, interval: str = "1m") -> pl.DataFrame:
    volume = np.full(len(close), 10.0) if volume is None else volume
    return compute_features(
        pl.DataFrame(
            {
                "open_time": [START + dt.timedelta(hours=i) for i in range(len(close))],
                "high": close + 0.5,
                "low": close - 0.5,
                "close": close,
                "volume": volume,
            }
        ),
        interval,
    )


def _decline_then_jump(rows: int, jump_row: int) -> np.ndarray:
    """An accelerating decline (fast EMA below slow, MACD below its signal) and a jump up on `jump_row`."""
    close = 500.0 - 0.01 * np.arange(rows) ** 2
    close[jump_row:] += 300.0
    return close


def test_rsi_enters_long_on_the_recovery_from_oversold():
    close = 100.0 - np.arange(40, dtype=float)
    close[30:] += 10.0  # RSI: 0 until row 29, then (10/14) / (10/14 + 13/14) = 43.5 on row 30
    out = RsiReversal(name="rsi").signals(_frame(close))
    assert fired(out, "enter_long") == [30]
    assert fired(out, "exit_long") == []


def test_ema_enters_long_when_fast_jumps_above_slow():
    out = EmaCrossover(name="ema").signals(_frame(_decline_then_jump(66, 60)))
    assert fired(out, "enter_long") == [60]
    assert fired(out, "exit_long") == []


def test_macd_enters_long_when_it_jumps_above_its_signal():
    out = MacdCrossover(name="macd").signals(_frame(_decline_then_jump(66, 60)))
    assert fired(out, "enter_long") == [60]
    assert fired(out, "exit_long") == []


def _range_then_breakout(breakout_volume: float) -> pl.DataFrame:
    """Closes alternate 101/100 at volume 10 (zone [100, 100 + 1/24] on 1h: ties go low); row 50 closes at 105."""
    close = np.where(np.arange(51) % 2 == 0, 101.0, 100.0)
    close[50] = 105.0
    volume = np.full(51, 10.0)
    volume[50] = breakout_volume
    return _frame(close, volume, interval="1h")


def test_volume_zone_breakout_enters_long_on_a_break_with_a_volume_surge():
    features = _range_then_breakout(breakout_volume=100.0)
    assert features["zone_high"][49] == pytest.approx(100 + 1 / 24)
    out = VolumeZoneBreakout(name="zones").signals(features)
    assert fired(out, "enter_long") == [50]
    assert fired(out, "exit_short")[-1] == 50  # the same break, no volume needed


def test_volume_zone_breakout_needs_volume_above_ratio_times_average():
    out = VolumeZoneBreakout(name="zones").signals(_range_then_breakout(breakout_volume=14.0))  # 1.4 x 10
    assert fired(out, "enter_long") == []
    assert fired(out, "exit_short")[-1] == 50


@pytest.mark.parametrize(
    ("cls", "params", "key", "problem"),
    [
        (RsiReversal, {"oversold": 70, "overbought": 30}, "oversold", "less than overbought"),
        (RsiReversal, {"oversold": 0}, "oversold", "between 0 and 100"),
        (RsiReversal, {"overbought": 100.5}, "overbought", "between 0 and 100"),
        (RsiReversal, {"period": 1}, "period", "integer >= 2"),
        (RsiReversal, {"period": 14.0}, "period", "integer >= 2"),
        (RsiReversal, {"period": True}, "period", "integer >= 2"),
        (EmaCrossover, {"fast": 50, "slow": 20}, "fast", "less than slow"),
        (EmaCrossover, {"slow": 0}, "slow", "integer >= 2"),
        (MacdCrossover, {"fast": 26, "slow": 26}, "fast", "less than slow"),
        (MacdCrossover, {"signal": 0}, "signal", "integer >= 1"),
        (VolumeZoneBreakout, {"volume_ratio": 0}, "volume_ratio", "> 0"),
        (VolumeZoneBreakout, {"volume_ratio": float("nan")}, "volume_ratio", "> 0"),
        (VolumeZoneBreakout, {"volume_window": -3}, "volume_window", "integer >= 2"),
    ],
)
def test_bad_params_raise_config_error_naming_the_key(cls, params, key, problem):
    with pytest.raises(ConfigError, match=f"strategies\\.mine\\.params\\.{key}: .*{problem}"):
        cls(name="mine", **params)
