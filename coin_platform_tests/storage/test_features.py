"""Feature objects: the one reader and writer."""

import datetime as dt

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from coin_platform.features import FEATURE_SCHEMA, compute_features
from coin_platform.storage.features import read_feature_days, write_feature_days
from coin_platform.storage.layout import features_day_keys
from coin_platform.storage.object_store import ObjectStore
from coin_platform_tests.features.support import START, candles

SYMBOL = "BTCUSDT"

@pytest.fixture
def store(tmp_path):
    return ObjectStore.local(tmp_path / "bucket")


def test_feature_days_round_trip_and_hours_without_rows_lose_their_object(store):
    features = compute_features(candles(START, seed=2), "1m")
    assert write_feature_days(store, "1m", SYMBOL, [START], features) == (24, 0)
    assert_frame_equal(read_feature_days(store, "1m", SYMBOL, [START]), features)
    later = features.filter(pl.col("open_time").dt.hour() >= 1)
    assert write_feature_days(store, "1m", SYMBOL, [START], later) == (23, 1)
    assert not store.exists(features_day_keys("1m", SYMBOL, START)[0])
    empty = read_feature_days(store, "1m", SYMBOL, [START + dt.timedelta(days=1)])
    assert empty.is_empty() and empty.schema == pl.Schema(FEATURE_SCHEMA)
