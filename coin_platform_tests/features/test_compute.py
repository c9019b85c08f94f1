"""compute_features: several symbols and `since` equal single computations; windows and look-back."""

import datetime as dt

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from coin_platform.core.intervals import interval_ms
from coin_platform.features import LOOKBACK_CANDLES, compute_features, lookback_days, zone_window
from coin_platform.storage.layout import day_start
from coin_platform_tests.features.support import START
from coin_platform_tests.features.support import candles as make_candles


def test_since_and_several_symbols_match_the_full_computation():
    a = make_candles(START, seed=1).with_columns(symbol=pl.lit("AAAUSDT"))
    b = make_candles(START, seed=2, minutes=1000).with_columns(symbol=pl.lit("BBBUSDT"))
    candles = pl.concat([a, b]).sort("open_time", "symbol")  # interleaved, as the loader returns
    full = compute_features(candles, "1m")
    for symbol, single in (("AAAUSDT", a), ("BBBUSDT", b)):
        alone = compute_features(single.drop("symbol"), "1m")
        assert_frame_equal(full.filter(pl.col("symbol") == symbol).drop("symbol"), alone, check_exact=True)
    since = day_start(START) + dt.timedelta(hours=9, minutes=7)
    assert_frame_equal(
        compute_features(candles, "1m", since=since),
        full.filter(pl.col("open_time") >= since),
        check_exact=True,
    )


def test_zone_window_is_a_day_of_candles_within_bounds():
    assert [zone_window(i) for i in ("1m", "15m", "1h")] == [240, 96, 24]


@pytest.mark.parametrize("interval", ["1m", "15m", "1h", "4h", "1d"])
def test_lookback_days_reach_the_day_of_the_first_look_back_candle(interval):
    first_candle = day_start(START) - dt.timedelta(milliseconds=LOOKBACK_CANDLES * interval_ms(interval))
    assert first_candle.date() == START - dt.timedelta(days=lookback_days(interval))
    assert [lookback_days(i) for i in ("1m", "15m", "1h")] == [4, 53, 209]
