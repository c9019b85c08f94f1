"""The market assets in-process against real SeaweedFS S3 and the replay server."""

import datetime as dt

import dagster as dg
import polars as pl
import pytest

from coin_platform.definitions import build_definitions
from coin_platform.defs.partitions import partition_range_tags as range_tags
from coin_platform.market.client import BinanceFuturesClient
from coin_platform.pipeline.ingest import build_ohlcv_day
from coin_platform.storage.layout import ohlcv_day_keys, raw_klines_key
from coin_platform.storage.ohlcv import read_ohlcv_day
from coin_platform_tests.defs.harness import (
    check_results,
    market_settings,
    object_store,
    run_checks,
    run_job,
)

DAY = dt.date(2024, 3, 10)


@pytest.fixture
def settings(tmp_path, replay_server, seaweedfs, s3_bucket):
    return market_settings(tmp_path, replay_server.url, seaweedfs, s3_bucket)


@pytest.fixture
def defs(settings):
    return build_definitions(settings)


def _metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    """The metadata `asset` reported in the run (a range run reports it on each of its partitions)."""
    events = [e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(asset)]
    return events[0].materialization.metadata


def _stored_objects(store, prefix: str) -> dict[str, bytes]:
    return {key: store.read_bytes(key) for key in store.list_keys(prefix)}


def test_one_partition_lands_as_24_hourly_objects_with_metadata(defs, settings):
    result = run_job(defs, "ingest_1m", tags=range_tags(DAY, DAY, "BTCUSDT", "BTCUSDT"))
    store = object_store(settings)
    assert store.list_keys("ohlcv/1m/BTCUSDT/") == ohlcv_day_keys("1m", "BTCUSDT", DAY)
    frame = read_ohlcv_day(store, "1m", "BTCUSDT", DAY)
    assert frame.height == 1440
    assert frame["open_time"].is_sorted() and frame["open_time"].is_unique().all()
    assert frame["open_time"].min() == dt.datetime(2024, 3, 10, tzinfo=dt.UTC)

    metadata = _metadata(result, "ohlcv_1m")
    assert metadata["source"].value == "replay"
    assert metadata["dagster/row_count"].value == 1440
    assert metadata["missing_candles"].value == 0
    assert metadata["files_written"].value == 24
    assert "preview" in metadata
    raw_meta = _metadata(result, "raw_klines_1m")
    assert raw_meta["source"].value == "replay"
    assert raw_meta["kline_requests"].value == 1  # 1440 candles fit one 1500-row page
    assert all(r.passed for r in check_results(result).values())


def test_a_range_run_fetches_each_symbols_days_in_one_pass(defs, settings):
    start, end = DAY, DAY + dt.timedelta(days=4)
    result = run_job(defs, "ingest_1h", tags=range_tags(start, end, "BTCUSDT", "ETHUSDT"))
    raw_meta = _metadata(result, "raw_klines_1h")
    assert raw_meta["partitions"].value == 10
    assert raw_meta["kline_requests"].value == 2  # one 120-candle page per symbol
    store = object_store(settings)
    for symbol in ("BTCUSDT", "ETHUSDT"):
        assert len(store.list_keys(f"ohlcv/1h/{symbol}/")) == 5 * 24
        assert store.exists(raw_klines_key("1h", symbol, end))
    btc = read_ohlcv_day(store, "1h", "BTCUSDT", DAY)
    eth = read_ohlcv_day(store, "1h", "ETHUSDT", DAY)
    assert not btc["close"].equals(eth["close"])


def test_rerunning_a_partition_rewrites_identical_objects(defs, settings):
    tags = range_tags(DAY, DAY + dt.timedelta(days=1), "ETHUSDT", "ETHUSDT")
    run_job(defs, "ingest_15m", tags=tags)
    store = object_store(settings)
    first = _stored_objects(store, "ohlcv/15m/ETHUSDT/") | _stored_objects(store, "raw/klines/15m/ETHUSDT/")
    run_job(defs, "ingest_15m", tags=tags)
    second = _stored_objects(store, "ohlcv/15m/ETHUSDT/") | _stored_objects(store, "raw/klines/15m/ETHUSDT/")
    assert len(first) == 48 + 2
    assert first == second


def test_a_stale_hour_object_is_removed_by_a_rerun(defs, settings):
    """An hour whose candles are no longer there (e.g. filtered) must not survive a repair.

    Through Dagster the raw day is always fetched again with its cleaning (one step), so the
    cleaning step is called here on a raw day that lost an hour; the checks then read the result.
    """
    tags = range_tags(DAY, DAY, "BTCUSDT", "BTCUSDT")
    run_job(defs, "ingest_1h", tags=tags)
    store = object_store(settings)
    raw_key = raw_klines_key("1h", "BTCUSDT", DAY)
    raw = store.read_parquet(raw_key)
    store.write_parquet(raw_key, raw.filter(pl.col("open_time").dt.hour() != 5))
    day = build_ohlcv_day(
        store, "1h", "BTCUSDT", DAY, now=dt.datetime.now(dt.UTC), drop_zero_volume=False, only_missing=False
    )
    assert day.files_deleted == 1
    assert day.missing == 1
    assert len(store.list_keys("ohlcv/1h/BTCUSDT/")) == 23
    assert [gap.as_dict() for gap in day.gaps] == [
        {"first": "2024-03-10T05:00:00+00:00", "last": "2024-03-10T05:00:00+00:00", "candles": 1}
    ]
    checks = check_results(run_checks(defs, "ohlcv_1h", tags, raise_on_error=False))
    assert not checks["no_gaps"].passed
    assert checks["no_gaps"].severity == dg.AssetCheckSeverity.WARN


def test_hourly_candles_equal_their_stored_minutes_and_tampering_is_caught(defs, settings):
    tags = range_tags(DAY, DAY, "BTCUSDT", "BTCUSDT")
    run_job(defs, "ingest_1m", tags=tags)
    result = run_job(defs, "ingest_1h", tags=tags)
    aggregate = check_results(result)["matches_1m_aggregate"]
    assert aggregate.passed, aggregate.metadata
    assert aggregate.metadata["partitions_checked"].value == 1

    store = object_store(settings)
    key = ohlcv_day_keys("1h", "BTCUSDT", DAY)[7]
    store.write_parquet(key, store.read_parquet(key).with_columns(pl.col("high") * 1.001))
    tampered = check_results(run_checks(defs, "ohlcv_1h", range_tags(DAY, DAY, "BTCUSDT", "BTCUSDT")))[
        "matches_1m_aggregate"
    ]
    assert not tampered.passed
    failed = tampered.metadata["failed_partitions"].value
    assert failed["2024-03-10|BTCUSDT"]["differing"] == ["2024-03-10T07:00:00+00:00"]


def test_checks_fail_on_a_corrupted_partition_and_name_the_candles(defs, settings):
    eth_day = range_tags(DAY, DAY, "ETHUSDT", "ETHUSDT")
    run_job(defs, "ingest_1m", tags=eth_day)
    store = object_store(settings)
    key = ohlcv_day_keys("1m", "ETHUSDT", DAY)[2]
    hour = store.read_parquet(key)
    broken = pl.concat([hour.head(10), hour.slice(9, 1), hour.slice(10)]).with_columns(
        pl.when(pl.int_range(pl.len()) == 30)
        .then(pl.col("high") - 1e6)
        .otherwise(pl.col("high"))
        .alias("high")
    )
    store.write_parquet(key, broken)
    results = check_results(run_checks(defs, "ohlcv_1m", eth_day, raise_on_error=False))
    assert results["schema"].passed
    assert not results["unique_increasing_open_time"].passed
    assert not results["ohlc_sanity"].passed
    sanity = results["ohlc_sanity"].metadata["failed_partitions"].value["2024-03-10|ETHUSDT"]
    assert sanity["bad_candles"] == ["2024-03-10T02:29:00+00:00"]

    store.write_parquet(key, hour.drop("trades"))
    results = check_results(run_checks(defs, "ohlcv_1m", eth_day, raise_on_error=False))
    assert not results["schema"].passed
    assert results["schema"].description == f"{key} lacks columns ['trades']"
    assert results["ohlc_sanity"].description == "not evaluated: the stored schema is wrong"


def test_live_schedule_requests_the_closing_day_for_all_symbols_only_missing(defs, settings):
    schedule = defs.get_schedule_def("live_1m_schedule")
    tick = dt.datetime(2024, 3, 11, 0, 0, tzinfo=dt.UTC)
    context = dg.build_schedule_context(scheduled_execution_time=tick)
    (request,) = schedule.evaluate_tick(context).run_requests
    assert request.tags["dagster/asset_partition_range_start"] == "2024-03-10|BTCUSDT"
    assert request.tags["dagster/asset_partition_range_end"] == "2024-03-10|SOLUSDT"
    assert request.run_config["ops"] == {"fetch_and_clean_1m": {"config": {"only_missing": True}}}
    hourly = defs.get_schedule_def("live_1h_schedule")
    assert hourly.cron_schedule == "0 * * * *"


def test_live_edge_fetches_only_what_is_not_stored(defs, settings):
    """The midnight tick asks for the day that just closed; a second tick of it fetches nothing.

    (A tick inside a day, with the forming candle left out, is tested on an injected clock in
    coin_platform_tests/pipeline/test_ingest.py; here the wall clock decides only which day is yesterday.)
    """
    midnight = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    yesterday = (midnight - dt.timedelta(days=1)).date()
    schedule = defs.get_schedule_def("live_15m_schedule")
    (request,) = schedule.evaluate_tick(dg.build_schedule_context(scheduled_execution_time=midnight)).run_requests
    first = run_job(defs, "ingest_15m", tags=request.tags, run_config=request.run_config)
    second = run_job(defs, "ingest_15m", tags=request.tags, run_config=request.run_config)
    first_meta = _metadata(first, "raw_klines_15m")
    second_meta = _metadata(second, "raw_klines_15m")
    assert first_meta["candles_fetched"].value == first_meta["dagster/row_count"].value > 0
    assert second_meta["candles_fetched"].value == second_meta["dagster/row_count"].value == 0  # complete: untouched
    frame = read_ohlcv_day(object_store(settings), "15m", "BTCUSDT", yesterday)
    assert frame.height == 96 and frame["open_time"].is_unique().all()
    assert frame["open_time"].min() == midnight - dt.timedelta(days=1)


def test_source_candles_survive_injected_faults_unchanged(tmp_path, start_replay, seaweedfs, s3_bucket):
    """429s, 5xx, truncated and malformed bodies: nothing lost, nothing duplicated."""
    start, end = DAY, DAY + dt.timedelta(days=5)
    clean = start_replay()
    faulty = start_replay(faults="429:every=4,503:every=3,truncate:at=2,malformed:at=5")
    settings = market_settings(tmp_path, faulty.url, seaweedfs, s3_bucket)
    result = run_job(
        build_definitions(settings), "ingest_1m", tags=range_tags(start, end, "SOLUSDT", "SOLUSDT")
    )
    raw_meta = _metadata(result, "raw_klines_1m")
    assert raw_meta["retries"].value >= 3
    assert raw_meta["rate_limited_responses"].value >= 1
    store = object_store(settings)
    with BinanceFuturesClient(clean.url) as client:
        expected = client.fetch_klines(
            "SOLUSDT", "1m", dt.datetime(2024, 3, 10, tzinfo=dt.UTC), dt.datetime(2024, 3, 16, tzinfo=dt.UTC)
        )
    stored = pl.concat(
        [store.read_parquet(raw_klines_key("1m", "SOLUSDT", start + dt.timedelta(days=i))) for i in range(6)]
    )
    assert stored.height == 6 * 1440
    assert stored.equals(expected)
    assert sum(faulty.stats()["faults_injected"].values()) >= 4


def test_a_418_ban_ends_the_run_with_a_clear_error_and_writes_nothing(
    tmp_path, start_replay, seaweedfs, s3_bucket
):
    banned = start_replay(faults="418:first=100")
    settings = market_settings(tmp_path, banned.url, seaweedfs, s3_bucket)
    result = run_job(
        build_definitions(settings),
        "ingest_1m",
        tags=range_tags(DAY, DAY, "BTCUSDT", "BTCUSDT"),
        raise_on_error=False,
    )
    assert not result.success
    message = str(result.failure_data_for_node("fetch_and_clean_1m").error)
    assert "banned" in message and "418" in message
    assert object_store(settings).list_keys("raw/") == []


def test_an_unlisted_symbol_is_refused_by_name_before_anything_is_fetched(
    tmp_path, replay_server, seaweedfs, s3_bucket
):
    settings = market_settings(
        tmp_path, replay_server.url, seaweedfs, s3_bucket, symbols=("BTCUSDT", "NOSUCHUSDT")
    )
    result = run_job(
        build_definitions(settings),
        "ingest_1h",
        tags=range_tags(DAY, DAY, "BTCUSDT", "NOSUCHUSDT"),
        raise_on_error=False,
    )
    assert not result.success
    message = str(result.failure_data_for_node("fetch_and_clean_1h").error)
    assert "NOSUCHUSDT" in message and "-1121" in message
    assert object_store(settings).list_keys("raw/") == []


def test_a_failed_sanity_check_blocks_everything_downstream(defs, settings):
    """A corrupted object (close = high = inf) is kept by a live-edge run; the blocking check stops the run."""
    tags = range_tags(DAY, DAY, "BTCUSDT", "BTCUSDT")
    run_job(defs, "ingest_1m", tags=tags, asset_selection=["raw_klines_1m", "ohlcv_1m"])
    store = object_store(settings)
    key = ohlcv_day_keys("1m", "BTCUSDT", DAY)[2]
    hour = store.read_parquet(key)
    corrupted = pl.int_range(pl.len()) == 30
    infinite = [pl.when(corrupted).then(float("inf")).otherwise(pl.col(c)).alias(c) for c in ("high", "close")]
    store.write_parquet(key, hour.with_columns(infinite))
    live = {"ops": {"fetch_and_clean_1m": {"config": {"only_missing": True}}}}
    result = run_job(defs, "ingest_1m", tags=tags, run_config=live, raise_on_error=False)
    assert not result.success
    sanity = check_results(result)["ohlc_sanity"]
    assert not sanity.passed
    failed = sanity.metadata["failed_partitions"].value["2024-03-10|BTCUSDT"]
    assert failed["bad_candles"] == ["2024-03-10T02:30:00+00:00"]
    assert failed["problems"] == ["non-finite high; non-finite close"]
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert materialized == {"raw_klines_1m", "ohlcv_1m"}
    assert store.list_keys("features/") == []
