"""Strategy.signals and signal_rows: causal, per symbol, never null, long form for candidate detection."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from coin_platform.core.signals import SIGNALS
from coin_platform.strategies import EmaCrossover, MacdCrossover, RsiReversal, VolumeZoneBreakout, signal_rows
from coin_platform_tests.strategies.references import START, random_walk_features

STRATEGIES = [
    RsiReversal(name="rsi"),
    RsiReversal(name="rsi_9", period=9, oversold=25, overbought=75),
    EmaCrossover(name="ema"),
    EmaCrossover(name="ema_8_21", fast=8, slow=21),
    MacdCrossover(name="macd"),
    MacdCrossover(name="macd_5_35_5", fast=5, slow=35, signal=5),
    VolumeZoneBreakout(name="zones"),
    VolumeZoneBreakout(name="zones_10", volume_window=10, volume_ratio=2.0),
]
ids = [s.name for s in STRATEGIES]


@pytest.fixture(scope="module")
def features() -> pl.DataFrame:
    return random_walk_features(1_500, seed=7)


@pytest.fixture(scope="module")
def per_symbol() -> dict[str, pl.DataFrame]:
    """Three symbols of different lengths and start times."""
    return {
        "BTCUSDT": random_walk_features(900, seed=11),
        "ETHUSDT": random_walk_features(700, seed=12, start=START + dt.timedelta(minutes=137)),
        "ADAUSDT": random_walk_features(40, seed=13, start=START + dt.timedelta(minutes=500)),
    }


@pytest.fixture(scope="module")
def interleaved(per_symbol) -> pl.DataFrame:
    """All symbols in one frame, rows shuffled across symbols but kept in time order within each."""
    rng = np.random.default_rng(0)
    symbols = list(per_symbol)
    slots = rng.permutation(np.repeat(np.arange(len(symbols)), [per_symbol[s].height for s in symbols]))
    position = {s: np.flatnonzero(slots == i) for i, s in enumerate(symbols)}
    stacked = pl.concat(
        [
            frame.select(pl.lit(s).alias("symbol"), pl.all(), _slot=pl.Series(position[s]))
            for s, frame in per_symbol.items()
        ]
    )
    return stacked.sort("_slot").drop("_slot")


@pytest.mark.parametrize("strategy", STRATEGIES, ids=ids)
def test_signals_keep_the_frame_and_add_four_boolean_columns(strategy, features):
    out = strategy.signals(features)
    assert out.columns == [*features.columns, *SIGNALS]
    assert_frame_equal(out.select(features.columns), features)
    for signal in SIGNALS:
        assert out.schema[signal] == pl.Boolean
        assert out[signal].null_count() == 0


@pytest.mark.parametrize("strategy", STRATEGIES, ids=ids)
def test_a_prefix_of_the_frame_gets_the_prefix_of_the_signals(strategy, features):
    full = strategy.signals(features)
    for k in (1, 2, 15, 34, 50, 333, 1_000, features.height - 1):
        assert_frame_equal(strategy.signals(features.head(k)), full.head(k))


@pytest.mark.parametrize("strategy", STRATEGIES, ids=ids)
def test_interleaved_symbols_get_their_own_signals(strategy, per_symbol, interleaved):
    out = strategy.signals(interleaved)
    assert_frame_equal(out.select(interleaved.columns), interleaved)
    assert out["symbol"].head(50).n_unique() == 3  # really interleaved
    for symbol, frame in per_symbol.items():
        assert_frame_equal(out.filter(pl.col("symbol") == symbol).drop("symbol"), strategy.signals(frame))


@pytest.mark.parametrize("strategy", STRATEGIES, ids=ids)
def test_empty_frame_gets_empty_signals(strategy, interleaved):
    out = strategy.signals(interleaved.head(0))
    assert out.height == 0
    assert out.columns == [*interleaved.columns, *SIGNALS]


def _expected_rows(strategies, frame: pl.DataFrame, keys: list[str]) -> list[tuple]:
    rows = []
    for strategy in strategies:
        out = strategy.signals(frame)
        for signal in SIGNALS:
            for key in out.filter(signal).select(keys).iter_rows():
                rows.append((*key, strategy.name, signal))
    return sorted(rows)


def test_signal_rows_lists_every_fired_signal_sorted(interleaved):
    rows = signal_rows(STRATEGIES, interleaved)
    assert rows.schema == pl.Schema(
        {"symbol": pl.String, "open_time": interleaved.schema["open_time"], "strategy": pl.String, "signal": pl.String}
    )
    assert rows.rows() == _expected_rows(STRATEGIES, interleaved, ["symbol", "open_time"])
    assert set(rows["signal"]) == set(SIGNALS)
    assert set(rows["strategy"]) == set(ids)


def test_signal_rows_without_symbol(features):
    rows = signal_rows(STRATEGIES[:2], features)
    assert rows.columns == ["open_time", "strategy", "signal"]
    assert rows.rows() == _expected_rows(STRATEGIES[:2], features, ["open_time"])


def test_signal_rows_of_no_strategies_is_empty_with_the_schema(interleaved):
    rows = signal_rows([], interleaved)
    assert rows.height == 0
    assert rows.columns == ["symbol", "open_time", "strategy", "signal"]
