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
    assert write_feature_days(store, "1m", SYMBOL, [START], later) == (0, 1)  # the 23 others are unchanged
    assert not store.exists(features_day_keys("1m", SYMBOL, START)[0])
    empty = read_feature_days(store, "1m", SYMBOL, [START + dt.timedelta(days=1)])
    assert empty.is_empty() and empty.schema == pl.Schema(FEATURE_SCHEMA)


def test_only_changed_hours_are_written_and_the_objects_equal_a_write_of_every_hour(store, tmp_path):
    features = compute_features(candles(START, seed=3), "1m")
    first_hours = features.filter(pl.col("open_time").dt.hour() < 22)
    assert write_feature_days(store, "1m", SYMBOL, [START], first_hours) == (22, 0)
    keys = features_day_keys("1m", SYMBOL, START)
    untouched = {k: store.read_bytes(k) for k in keys[:21]}
    # A live tick: hour 21 gains nothing, 22 and 23 are new, and one row of hour 20 changed.
    changed = features.with_columns(
        ema_20=pl.when(pl.col("open_time") == features["open_time"][20 * 60 + 5])
        .then(pl.col("ema_20") + 1)
        .otherwise(pl.col("ema_20"))
    )
    assert write_feature_days(store, "1m", SYMBOL, [START], changed) == (3, 0)
    assert {k: store.read_bytes(k) for k in keys[:21] if k != keys[20]} == {
        k: v for k, v in untouched.items() if k != keys[20]
    }
    reference = ObjectStore.local(tmp_path / "reference")
    write_feature_days(reference, "1m", SYMBOL, [START], changed)
    assert {k: store.read_bytes(k) for k in keys} == {k: reference.read_bytes(k) for k in keys}


def test_a_stored_hour_of_another_schema_is_rewritten(store):
    features = compute_features(candles(START, seed=4), "1m")
    write_feature_days(store, "1m", SYMBOL, [START], features)
    key = features_day_keys("1m", SYMBOL, START)[5]
    store.write_parquet(key, store.read_parquet(key).with_columns(pl.col("volume").cast(pl.Float32)))
    assert write_feature_days(store, "1m", SYMBOL, [START], features) == (1, 0)
    assert_frame_equal(read_feature_days(store, "1m", SYMBOL, [START]), features)
