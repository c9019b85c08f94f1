"""Raw klines: the one reader and writer."""

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from coin_platform.market.klines import RAW_KLINE_SCHEMA
from coin_platform.storage.object_store import ObjectStore
from coin_platform.storage.raw_klines import read_raw_day, write_raw_day
from coin_platform_tests.features.support import START

SYMBOL = "BTCUSDT"

@pytest.fixture
def store(tmp_path):
    return ObjectStore.local(tmp_path / "bucket")


def test_raw_klines_round_trip_and_a_missing_day_is_none(store):
    assert read_raw_day(store, "1m", SYMBOL, START) is None
    frame = pl.DataFrame(schema=RAW_KLINE_SCHEMA)
    write_raw_day(store, "1m", SYMBOL, START, frame)
    assert_frame_equal(read_raw_day(store, "1m", SYMBOL, START), frame)
