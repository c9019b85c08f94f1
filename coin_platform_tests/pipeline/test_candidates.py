"""Candidate detection reads the stored features when the strategies allow, with the same results."""

import datetime as dt

import polars as pl
import pytest

from coin_platform.events.candidates import candidates_from_features
from coin_platform.pipeline.candidates import detect_candidates, feature_days_before, needs_candles, stored_rows_before
from coin_platform.pipeline.features import build_feature_days
from coin_platform.storage.features import read_feature_days
from coin_platform.storage.layout import features_day_keys, ohlcv_key
from coin_platform.storage.object_store import ObjectStore
from coin_platform.strategies import EmaCrossover, MacdCrossover, RsiReversal, VolumeZoneBreakout
from coin_platform_tests.features.support import START, candles, counting_reads

SYMBOL = "BTCUSDT"
DAYS = [START + dt.timedelta(days=i) for i in range(3)]
STORED = (
    RsiReversal(name="rsi"),
    EmaCrossover(name="ema"),
    MacdCrossover(name="macd"),
    VolumeZoneBreakout(name="zone"),
)
NOW = dt.datetime(2024, 6, 1, tzinfo=dt.UTC)


class FromCandles(RsiReversal):
    """RSI reversal forced onto the computed-features path (as an unstored series would be)."""

    def rows_before(self, columns):
        return None


@pytest.fixture
def store(tmp_path):
    store = ObjectStore.local(tmp_path / "bucket")
    for i, day in enumerate(DAYS):
        frame = candles(day, seed=10 + i).with_columns(hour=pl.col("open_time").dt.truncate("1h"))
        by_hour = frame.partition_by("hour", as_dict=True)
        store.write_parquet_many({ohlcv_key("1m", SYMBOL, h): rows.drop("hour") for (h,), rows in by_hour.items()})
    build_feature_days(store, "1m", SYMBOL, DAYS, START)
    return store


def test_default_strategies_need_only_the_stored_features_and_a_day_before():
    assert not needs_candles(STORED)
    assert feature_days_before(STORED, "1m") == 1 and feature_days_before((), "1h") == 0
    assert needs_candles((EmaCrossover(name="ema_10_30", fast=10, slow=30),))
    assert needs_candles((MacdCrossover(name="m", fast=5, slow=35, signal=5),))


def test_candidates_from_stored_features_equal_those_from_the_candles(store):
    days = DAYS[1:]
    from_features = detect_candidates(store, STORED, "1m", SYMBOL, days, START, detected_at=NOW)
    forced = (FromCandles(name="rsi"), *STORED[1:])
    assert needs_candles(forced)
    from_candles = detect_candidates(store, forced, "1m", SYMBOL, days, START, detected_at=NOW)
    assert from_features, "the synthetic days should fire some signals"
    assert [c.id for c in from_features] == [c.id for c in from_candles]
    for a, b in zip(from_features, from_candles, strict=True):
        assert (a.signal, a.price, a.open_time) == (b.signal, b.price, b.open_time)
        assert a.features == pytest.approx(b.features, rel=1e-9)
    assert {c.open_time.date() for c in from_features} <= set(days)


def test_a_strategy_without_stored_series_reads_the_candles(store):
    ema = EmaCrossover(name="ema_10_30", fast=10, slow=30)
    found = detect_candidates(store, (ema,), "1m", SYMBOL, DAYS[2:], START, detected_at=NOW)
    assert found and all(c.strategy == "ema_10_30" for c in found)


def _over_whole_days_before(store: ObjectStore, day: dt.date) -> list:
    """The reference: every strategy evaluated over the stored features of the whole day before and `day`."""
    features = read_feature_days(store, "1m", SYMBOL, [day - dt.timedelta(days=1), day])
    return candidates_from_features(STORED, features, symbol=SYMBOL, interval="1m", detected_at=NOW, days=[day])


def test_only_the_hours_holding_the_rows_the_rules_look_back_at_are_read(store, monkeypatch):
    reads = counting_reads(store, monkeypatch)
    found = detect_candidates(store, STORED, "1m", SYMBOL, [DAYS[2]], START, detected_at=NOW)
    zone_hours = -(-stored_rows_before(STORED) // 60)
    assert sorted(reads) == sorted(
        features_day_keys("1m", SYMBOL, DAYS[1])[-zone_hours:] + features_day_keys("1m", SYMBOL, DAYS[2])
    )
    assert found == _over_whole_days_before(store, DAYS[2])


def test_hours_missing_before_the_day_are_read_past(store):
    """The day before ends in a gap: the rows the rules need come from the hours before it."""
    stored_rows = stored_rows_before(STORED)
    gap_hours = features_day_keys("1m", SYMBOL, DAYS[1])[-(stored_rows // 60 + 3) :]
    store.delete_many(gap_hours)
    found = detect_candidates(store, STORED, "1m", SYMBOL, [DAYS[2]], START, detected_at=NOW)
    assert found == _over_whole_days_before(store, DAYS[2])
    alone = detect_candidates(store, STORED, "1m", SYMBOL, [DAYS[1]], START, detected_at=NOW)
    assert alone == _over_whole_days_before(store, DAYS[1])
