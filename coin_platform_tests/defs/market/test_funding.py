"""The funding_rates asset and its checks in-process against real SeaweedFS S3 and the replay server,
and the real funding files in shared/data checked as stored partitions."""

import datetime as dt

import dagster as dg
import polars as pl
import pytest

from coin_platform.definitions import build_definitions
from coin_platform.defs.partitions import partition_range_tags as range_tags
from coin_platform.market.client import BinanceFuturesClient
from coin_platform.market.funding import FUNDING_SCHEMA
from coin_platform.storage.funding import read_funding, write_funding_day
from coin_platform.storage.layout import day_start, funding_key
from coin_platform_tests.defs.harness import check_results, market_settings, object_store, run_checks, run_job
from coin_platform_tests.market.test_funding import freqtrade_funding

DAY = dt.date(2024, 3, 10)


@pytest.fixture
def settings(tmp_path, replay_server, seaweedfs, s3_bucket):
    return market_settings(tmp_path, replay_server.url, seaweedfs, s3_bucket)


@pytest.fixture
def defs(settings):
    return build_definitions(settings)


def _metadata(result: dg.ExecuteInProcessResult) -> dict:
    (event, *_) = (e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey("funding_rates"))
    return event.materialization.metadata


def _stored(store, symbol: str, first: dt.date, days: int) -> pl.DataFrame:
    return read_funding(store, [symbol], day_start(first), day_start(first + dt.timedelta(days=days)))


def test_a_range_run_stores_each_day_with_metadata_and_checks(defs, settings, replay_server):
    last = DAY + dt.timedelta(days=2)
    result = run_job(defs, "ingest_funding", tags=range_tags(DAY, last, "BTCUSDT", "ETHUSDT"))
    store = object_store(settings)
    assert store.list_keys("funding/") == [
        funding_key(symbol, DAY + dt.timedelta(days=d)) for symbol in ("BTCUSDT", "ETHUSDT") for d in range(3)
    ]
    with BinanceFuturesClient(replay_server.url) as client:
        expected = client.fetch_funding_rates("BTCUSDT", day_start(DAY), day_start(last + dt.timedelta(days=1)))
    assert _stored(store, "BTCUSDT", DAY, 3).equals(expected) and expected.height == 9

    metadata = _metadata(result)
    assert metadata["source"].value == "replay"
    assert (metadata["partitions"].value, metadata["dagster/row_count"].value) == (6, 18)
    assert metadata["funding_requests"].value == 2  # one pass per symbol over its three days
    rates = pl.concat([expected, _stored(store, "ETHUSDT", DAY, 3)])["funding_rate"]
    assert metadata["min_rate"].value == rates.min() and metadata["max_rate"].value == rates.max()
    assert metadata["mean_rate"].value == pytest.approx(rates.mean())
    by_symbol = metadata["by_symbol"].value
    assert "BTCUSDT" in by_symbol and "ETHUSDT" in by_symbol and any(c in by_symbol for c in "▁▄█")
    assert metadata["first_funding_time"].value.startswith("2024-03-10T00:00:00")

    checks = check_results(result)
    assert all(c.passed for c in checks.values())
    intervals = checks["funding_times_on_grid"].metadata["funding_interval_hours"].value
    assert intervals == {f"{DAY + dt.timedelta(days=d)}|{s}": 8 for s in ("BTCUSDT", "ETHUSDT") for d in range(3)}


def test_a_rerun_rewrites_identical_objects(defs, settings):
    tags = range_tags(DAY, DAY + dt.timedelta(days=1), "SOLUSDT", "SOLUSDT")
    run_job(defs, "ingest_funding", tags=tags)
    store = object_store(settings)
    first = {key: store.read_bytes(key) for key in store.list_keys("funding/")}
    run_job(defs, "ingest_funding", tags=tags)
    assert {key: store.read_bytes(key) for key in store.list_keys("funding/")} == first and len(first) == 2


def test_today_holds_only_the_funding_times_that_have_passed(defs, settings):
    today = dt.datetime.now(dt.UTC).date()
    run_job(defs, "ingest_funding", tags=range_tags(today, today, "BTCUSDT", "BTCUSDT"))
    stored = _stored(object_store(settings), "BTCUSDT", today, 1)
    passed = (dt.datetime.now(dt.UTC) - day_start(today)) // dt.timedelta(hours=8) + 1
    assert stored.height in (passed - 1, passed)  # the one of this very moment may still be ahead
    assert (stored["funding_time"] <= dt.datetime.now(dt.UTC)).all()


def test_the_checks_fail_on_tampered_objects_and_name_the_rows(defs, settings):
    tags = range_tags(DAY, DAY, "BTCUSDT", "BTCUSDT")
    run_job(defs, "ingest_funding", tags=tags)
    store = object_store(settings)
    day = _stored(store, "BTCUSDT", DAY, 1)
    tampered = day.with_columns(
        funding_time=pl.when(pl.int_range(pl.len()) == 1)
        .then(pl.col("funding_time") + dt.timedelta(minutes=30))
        .otherwise(pl.col("funding_time")),
        funding_rate=pl.when(pl.int_range(pl.len()) == 2).then(0.05).otherwise(pl.col("funding_rate")),
    )
    write_funding_day(store, "BTCUSDT", DAY, tampered)
    checks = check_results(run_checks(defs, "funding_rates", tags, raise_on_error=False))
    grid, cap = checks["funding_times_on_grid"], checks["funding_rates_within_cap"]
    assert not grid.passed and not cap.passed
    assert grid.metadata["failed_partitions"].value["2024-03-10|BTCUSDT"]["off_grid"] == [
        (day["funding_time"][1] + dt.timedelta(minutes=30)).isoformat()
    ]
    assert cap.metadata["failed_partitions"].value["2024-03-10|BTCUSDT"]["problems"] == [
        "|funding_rate| above the 3% cap"
    ]
    store.write_parquet(funding_key("BTCUSDT", DAY), day.drop("mark_price"))
    checks = check_results(run_checks(defs, "funding_rates", tags, raise_on_error=False))
    assert checks["funding_rates_within_cap"].description == (
        f"{funding_key('BTCUSDT', DAY)} lacks columns ['mark_price']"
    )


def test_a_four_hourly_symbol_passes_and_its_interval_is_reported(defs, settings):
    start = day_start(DAY)
    four_hourly = pl.DataFrame(
        {
            "symbol": ["ETHUSDT"] * 6,
            "funding_time": [start + dt.timedelta(hours=4 * i, milliseconds=5) for i in range(6)],
            "funding_rate": [0.0001] * 6,
            "mark_price": [3000.0] * 6,
        },
        schema=FUNDING_SCHEMA,
    )
    write_funding_day(object_store(settings), "ETHUSDT", DAY, four_hourly)
    grid = check_results(run_checks(defs, "funding_rates", range_tags(DAY, DAY, "ETHUSDT", "ETHUSDT")))[
        "funding_times_on_grid"
    ]
    assert grid.passed and "the 4 h grid (not Binance's default 8 h)" in grid.description
    assert grid.metadata["funding_interval_hours"].value == {"2024-03-10|ETHUSDT": 4}


def test_the_real_freqtrade_funding_passes_the_checks_as_stored_partitions(
    tmp_path, replay_server, seaweedfs, s3_bucket
):
    frame = freqtrade_funding()
    settings = market_settings(
        tmp_path, replay_server.url, seaweedfs, s3_bucket, symbols=("XRPUSDT",), config={"history_start": "2021-11-01"}
    )
    store = object_store(settings)
    by_day = frame.with_columns(day=pl.col("funding_time").dt.date())
    for (day,), rows in by_day.partition_by("day", as_dict=True).items():
        write_funding_day(store, "XRPUSDT", day, rows.drop("day"))
    first, last = frame["funding_time"].min().date(), frame["funding_time"].max().date()
    checks = check_results(
        run_checks(build_definitions(settings), "funding_rates", range_tags(first, last, "XRPUSDT", "XRPUSDT"))
    )
    grid = checks["funding_times_on_grid"]
    assert grid.passed and checks["funding_rates_within_cap"].passed
    assert grid.metadata["partitions_checked"].value == (last - first).days + 1 == 31
    assert set(grid.metadata["funding_interval_hours"].value.values()) == {8}


def test_injected_faults_lose_nothing(tmp_path, start_replay, replay_server, seaweedfs, s3_bucket):
    faults = "429:at=1:on=funding,503:at=2:on=funding,truncate:at=3:on=funding,malformed:at=4:on=funding"
    settings = market_settings(tmp_path, start_replay(faults=faults).url, seaweedfs, s3_bucket)
    tags = range_tags(DAY, DAY + dt.timedelta(days=4), "SOLUSDT", "SOLUSDT")
    metadata = _metadata(run_job(build_definitions(settings), "ingest_funding", tags=tags))
    assert metadata["retries"].value == 3 and metadata["rate_limited_responses"].value == 1
    with BinanceFuturesClient(replay_server.url) as client:
        expected = client.fetch_funding_rates("SOLUSDT", day_start(DAY), day_start(DAY + dt.timedelta(days=5)))
    assert _stored(object_store(settings), "SOLUSDT", DAY, 5).equals(expected) and expected.height == 15


def test_a_418_ban_ends_the_run_with_a_clear_error_and_writes_nothing(tmp_path, start_replay, seaweedfs, s3_bucket):
    settings = market_settings(tmp_path, start_replay(faults="418:first=100:on=funding").url, seaweedfs, s3_bucket)
    tags = range_tags(DAY, DAY, "BTCUSDT", "BTCUSDT")
    result = run_job(build_definitions(settings), "ingest_funding", tags=tags, raise_on_error=False)
    assert not result.success
    message = str(result.failure_data_for_node("funding_rates").error)
    assert "banned" in message and "418" in message
    assert object_store(settings).list_keys("funding/") == []
