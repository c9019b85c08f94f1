"""The compaction step: a year of hourly objects becomes one archive, and the check compares them."""

import datetime as dt

import polars as pl
import pytest

from coin_platform.local.replay import ReplayServer
from coin_platform.market.client import BinanceFuturesClient
from coin_platform.pipeline.compaction import compact_year, compare_with_hourly
from coin_platform.pipeline.ingest import build_ohlcv_day, ingest_raw_klines
from coin_platform.storage.archive import read_archive
from coin_platform.storage.layout import history_key, ohlcv_day_keys
from coin_platform.storage.object_store import ObjectStore

DAYS = [dt.date(2024, 12, 30), dt.date(2024, 12, 31), dt.date(2025, 1, 1)]
NOW = dt.datetime(2025, 1, 5, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def stored(tmp_path_factory) -> ObjectStore:
    store = ObjectStore.local(tmp_path_factory.mktemp("root"))
    with ReplayServer(weight_limit=10**9) as server, BinanceFuturesClient(server.url) as client:
        ingest_raw_klines(client, store, "1h", "BTCUSDT", DAYS, only_missing=False)
    for day in DAYS:
        build_ohlcv_day(store, "1h", "BTCUSDT", day, now=NOW, drop_zero_volume=False, only_missing=False)
    return store


def test_a_year_is_compacted_up_to_its_through_day_and_no_further(stored):
    compaction = compact_year(stored, "1h", "BTCUSDT", 2024, through=dt.date(2024, 12, 31))
    assert (compaction.key, compaction.rows, compaction.objects_read) == (history_key("BTCUSDT", "1h", 2024), 48, 48)
    assert compaction.compacted_through == dt.date(2024, 12, 31)
    assert compaction.last_timestamp == dt.datetime(2024, 12, 31, 23, tzinfo=dt.UTC)
    archive, through = read_archive(stored, "1h", "BTCUSDT", 2024)
    assert through == dt.date(2024, 12, 31) and archive["timestamp"].is_sorted()
    assert compare_with_hourly(stored, "1h", "BTCUSDT", 2024).identical


def test_a_rerun_writes_the_same_archive(stored):
    compact_year(stored, "1h", "BTCUSDT", 2024, through=dt.date(2024, 12, 31))
    first = stored.read_bytes(history_key("BTCUSDT", "1h", 2024))
    compact_year(stored, "1h", "BTCUSDT", 2024, through=dt.date(2024, 12, 31))
    assert stored.read_bytes(history_key("BTCUSDT", "1h", 2024)) == first


def test_the_check_finds_an_hour_that_changed_after_compaction(tmp_path, stored):
    store = ObjectStore.local(tmp_path)
    for day in DAYS[:2]:
        for key in ohlcv_day_keys("1h", "BTCUSDT", day):
            store.write_bytes(key, stored.read_bytes(key))
    compact_year(store, "1h", "BTCUSDT", 2024, through=dt.date(2024, 12, 31))
    key = ohlcv_day_keys("1h", "BTCUSDT", DAYS[1])[5]
    store.write_parquet(key, store.read_parquet(key).with_columns(pl.col("close") * 1.01))
    comparison = compare_with_hourly(store, "1h", "BTCUSDT", 2024)
    assert not comparison.identical
    assert (comparison.archived, comparison.expected, comparison.only_in_archive, comparison.only_in_hourly) == (
        48, 48, 1, 1)


def test_comparing_a_year_without_an_archive_names_the_object(tmp_path):
    with pytest.raises(FileNotFoundError, match="history/ETHUSDT/1H/2023.parquet"):
        compare_with_hourly(ObjectStore.local(tmp_path), "1h", "ETHUSDT", 2023)
