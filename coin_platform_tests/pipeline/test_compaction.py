"""The compaction step: a year of hourly objects and public archive files becomes one archive, and the check
compares it with the hourly objects it took."""

import datetime as dt

import polars as pl
import pytest

from coin_platform.binance.http import RetryPolicy
from coin_platform.local.replay import ReplayServer
from coin_platform.market.client import BinanceFuturesClient
from coin_platform.market.public_archive import ChecksumMismatchError, PublicArchiveClient
from coin_platform.pipeline.compaction import compact_year, compare_with_hourly
from coin_platform.pipeline.ingest import build_ohlcv_day, ingest_raw_klines
from coin_platform.storage.archive import read_archive
from coin_platform.storage.layout import day_start, history_key, ohlcv_day_keys
from coin_platform.storage.object_store import ObjectStore
from coin_platform.storage.ohlcv import read_candles

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
        48,
        48,
        1,
        1,
    )


def test_comparing_a_year_without_an_archive_names_the_object(tmp_path):
    with pytest.raises(FileNotFoundError, match="history/ETHUSDT/1H/2023.parquet"):
        compare_with_hourly(ObjectStore.local(tmp_path), "1h", "ETHUSDT", 2023)


# -- from Binance's public archive ------------------------------------------------------------------


@pytest.fixture(scope="module")
def archive_server():
    with ReplayServer() as server:
        yield server


@pytest.fixture
def public_archive(archive_server):
    archive_server.set_faults("")
    with PublicArchiveClient(archive_server.url, sleep=lambda _: None, policy=RetryPolicy(max_retries=1)) as client:
        yield client


def _copy_hourly(source: ObjectStore, target: ObjectStore) -> None:
    for day in DAYS:
        for key in ohlcv_day_keys("1h", "BTCUSDT", day):
            target.write_bytes(key, source.read_bytes(key))


def test_a_year_from_the_public_archive_holds_the_candles_rest_stored(tmp_path, stored, public_archive):
    store = ObjectStore.local(tmp_path)
    _copy_hourly(stored, store)
    compaction = compact_year(
        store, "1h", "BTCUSDT", 2024, through=dt.date(2024, 12, 31), public_archive=public_archive, now=NOW
    )
    assert (compaction.rows, compaction.files_downloaded, compaction.days_from_hourly) == (366 * 24, 12, 0)
    assert (compaction.missing_candles, compaction.quarantined, compaction.objects_read) == (0, 0, 0)
    archive, through = read_archive(store, "1h", "BTCUSDT", 2024)
    assert through == dt.date(2024, 12, 31) and archive["timestamp"].is_sorted()
    # The days REST wrote hold the same rows: the archive keeps serving them (equal day versions).
    rest_days = read_candles(store, "BTCUSDT", "1h", day_start(DAYS[0]), day_start(DAYS[2]))
    hourly = pl.concat([store.read_parquet(k) for d in DAYS[:2] for k in ohlcv_day_keys("1h", "BTCUSDT", d)])
    assert rest_days.select("timestamp", "open", "high", "low", "close", "volume").equals(
        hourly.rename({"open_time": "timestamp"}).select("timestamp", "open", "high", "low", "close", "volume")
    )
    assert archive.filter(pl.col("timestamp").dt.date().is_in(DAYS[:2])).height == 48
    assert compare_with_hourly(store, "1h", "BTCUSDT", 2024).identical  # nothing taken from hourly objects


def test_a_rebuild_reuses_unchanged_files_and_writes_the_same_archive(tmp_path, public_archive):
    store = ObjectStore.local(tmp_path)
    compact_year(store, "1h", "ETHUSDT", 2023, through=dt.date(2023, 12, 31), public_archive=public_archive, now=NOW)
    first = store.read_bytes(history_key("ETHUSDT", "1h", 2023))
    taken: list[tuple[str, str]] = []
    again = compact_year(
        store,
        "1h",
        "ETHUSDT",
        2023,
        through=dt.date(2023, 12, 31),
        public_archive=public_archive,
        now=NOW,
        progress=lambda file, how: taken.append((file.name, how)),
    )
    assert (again.files_downloaded, again.files_reused, again.bytes_downloaded, again.bytes_written) == (0, 12, 0, 0)
    assert taken[0] == ("ETHUSDT-1h-2023-01.zip", "reused") and len(taken) == 12
    assert store.read_bytes(history_key("ETHUSDT", "1h", 2023)) == first


def test_a_month_not_published_yet_comes_from_its_daily_files_and_a_missing_day_from_hourly_objects(
    tmp_path, stored, archive_server, public_archive
):
    store = ObjectStore.local(tmp_path)
    _copy_hourly(stored, store)
    archive_server.set_faults("unpublished:file=BTCUSDT-1h-2024-12.zip,unpublished:file=BTCUSDT-1h-2024-12-31.zip")
    compaction = compact_year(
        store, "1h", "BTCUSDT", 2024, through=dt.date(2024, 12, 31), public_archive=public_archive, now=NOW
    )
    assert compaction.unpublished == ("BTCUSDT-1h-2024-12-31.zip",)
    assert (compaction.files_downloaded, compaction.days_from_hourly, compaction.objects_read) == (11 + 30, 1, 24)
    assert compaction.rows == 366 * 24 and compaction.missing_candles == 0
    assert compare_with_hourly(store, "1h", "BTCUSDT", 2024).identical  # Dec 31 is the hourly objects' rows


def test_a_day_neither_published_nor_stored_is_counted_missing(tmp_path, archive_server, public_archive):
    archive_server.set_faults("unpublished:file=SOLUSDT-1h-2024-03.zip,unpublished:file=SOLUSDT-1h-2024-03-10.zip")
    compaction = compact_year(
        ObjectStore.local(tmp_path),
        "1h",
        "SOLUSDT",
        2024,
        through=dt.date(2024, 3, 31),
        public_archive=public_archive,
        now=dt.datetime(2024, 4, 2, tzinfo=dt.UTC),  # March's file is not out yet: its daily files stand in
    )
    assert (compaction.rows, compaction.missing_candles) == (91 * 24 - 24, 24)
    assert compaction.unpublished == ("SOLUSDT-1h-2024-03-10.zip",)


def test_a_long_closed_month_without_a_file_is_missing_without_asking_for_its_days(
    tmp_path, archive_server, public_archive
):
    """Before a symbol's listing the archive has no month; its 29 daily files are not asked for one by one."""
    archive_server.set_faults("unpublished:file=SOLUSDT-1h-2024-02.zip")
    requests_before = archive_server.stats()["archive_requests"]
    compaction = compact_year(
        ObjectStore.local(tmp_path),
        "1h",
        "SOLUSDT",
        2024,
        through=dt.date(2024, 3, 31),
        public_archive=public_archive,
        now=NOW,
    )
    assert compaction.unpublished == ("SOLUSDT-1h-2024-02.zip",)
    assert (compaction.rows, compaction.missing_candles) == (91 * 24 - 29 * 24, 29 * 24)
    assert archive_server.stats()["archive_requests"] - requests_before == 3 * 2 - 1  # CHECKSUM + zip, Feb: 404


def test_a_corrupt_file_fails_the_build_and_leaves_the_archive_as_it_was(tmp_path, archive_server, public_archive):
    store = ObjectStore.local(tmp_path)
    archive_server.set_faults("corrupt_zip:file=ETHUSDT-1h-2024-02.zip")
    with pytest.raises(ChecksumMismatchError, match="ETHUSDT-1h-2024-02.zip"):
        compact_year(
            store, "1h", "ETHUSDT", 2024, through=dt.date(2024, 12, 31), public_archive=public_archive, now=NOW
        )
    assert not store.exists(history_key("ETHUSDT", "1h", 2024))
