"""Hourly OHLCV: the one writer and the readers built from the date range (a missing hour is a gap)."""

import datetime as dt

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from coin_platform.market.klines import SchemaMismatchError
from coin_platform.storage.layout import day_start, ohlcv_day_keys
from coin_platform.storage.object_store import ObjectStore
from coin_platform.storage.ohlcv import read_candles, read_ohlcv_day, read_ohlcv_days, write_ohlcv_day
from coin_platform_tests.features.support import START, candles

SYMBOL = "BTCUSDT"

@pytest.fixture
def store(tmp_path):
    return ObjectStore.local(tmp_path / "bucket")


def test_ohlcv_day_written_hourly_is_read_back_and_a_missing_hour_is_a_gap(store):
    day = candles(START, seed=1).filter(pl.col("open_time").dt.hour() != 5)
    written, deleted = write_ohlcv_day(store, "1m", SYMBOL, START, day, hours_closed=24, only_missing=False)
    assert (written, deleted) == (23, 0)
    assert_frame_equal(read_ohlcv_day(store, "1m", SYMBOL, START), day)
    both, objects = read_ohlcv_days(store, "1m", SYMBOL, START - dt.timedelta(days=1), START)
    assert objects == 23 and both.height == day.height
    rows = read_candles(store, SYMBOL, "1m", day_start(START), day_start(START) + dt.timedelta(hours=7))
    assert rows["timestamp"].is_sorted() and rows.height == 6 * 60
    # A rerun without the day's first hour removes its stale object.
    shorter = day.filter(pl.col("open_time").dt.hour() != 0)
    assert write_ohlcv_day(store, "1m", SYMBOL, START, shorter, hours_closed=24, only_missing=False) == (22, 1)


def test_a_stored_object_with_another_schema_is_named(store):
    key = ohlcv_day_keys("1m", SYMBOL, START)[0]
    store.write_parquet(key, candles(START, seed=1).head(3).drop("trades"))
    with pytest.raises(SchemaMismatchError, match=key):
        read_ohlcv_day(store, "1m", SYMBOL, START)
