"""The yearly history archive as Dagster assets, against SeaweedFS S3 and the replay server."""

import datetime as dt

import dagster as dg
import polars as pl
import pyarrow.parquet as pq
import pytest

from coin_platform.definitions import build_definitions
from coin_platform.defs.partitions import partition_range_tags, year_range_tags, year_symbol_key
from coin_platform.storage.archive import encode_history, read_compacted_through
from coin_platform.storage.layout import history_key
from coin_platform_tests.defs.harness import (
    market_settings,
    object_store,
    run_checks,
    run_job,
)

FIRST_DAY, LAST_DAY = dt.date(2024, 12, 30), dt.date(2025, 1, 2)


@pytest.fixture
def settings(tmp_path, replay_server, seaweedfs, s3_bucket):
    """Compaction from the hourly objects alone (public_archive off); the archive source has its own test."""
    return market_settings(
        tmp_path, replay_server.url, seaweedfs, s3_bucket, config={"ingestion": {"public_archive": False}}
    )


@pytest.fixture
def defs(settings):
    defs = build_definitions(settings)
    run_job(defs, "ingest_1h", tags=partition_range_tags(FIRST_DAY, LAST_DAY, "BTCUSDT", "BTCUSDT"))
    return defs


def test_years_compact_their_own_days_across_a_year_boundary(defs, settings):
    result = run_job(
        defs,
        "compact_history",
        tags=year_range_tags(2024, 2025, "BTCUSDT", "BTCUSDT"),
        asset_selection=["history_1h"],
    )
    store = object_store(settings)
    archive_2024 = store.read_parquet(history_key("BTCUSDT", "1h", 2024))
    archive_2025 = store.read_parquet(history_key("BTCUSDT", "1h", 2025))
    assert archive_2024.height == archive_2025.height == 48
    assert archive_2024["timestamp"].min() == dt.datetime(2024, 12, 30, tzinfo=dt.UTC)
    assert archive_2025["timestamp"].max() == dt.datetime(2025, 1, 2, 23, tzinfo=dt.UTC)
    assert archive_2024["timestamp"].is_sorted() and archive_2024["symbol"].unique().to_list() == ["BTCUSDT"]
    assert archive_2025["timeframe"].unique().to_list() == ["1H"]
    assert read_compacted_through(store, history_key("BTCUSDT", "1h", 2024)) == dt.date(2024, 12, 31)
    assert read_compacted_through(store, history_key("BTCUSDT", "1h", 2025)) == dt.date(2025, 12, 31)
    meta = result.asset_materializations_for_node("history_1h")[0].metadata
    assert meta["dagster/row_count"].value == 96
    assert meta["hourly_objects_read"].value == 96
    # Each year is observed as it is built, with where the run stands.
    observed = [
        e.event_specific_data.asset_observation for e in result.all_events if e.event_type_value == "ASSET_OBSERVATION"
    ]
    assert [o.partition for o in observed] == [year_symbol_key(2024, "BTCUSDT"), year_symbol_key(2025, "BTCUSDT")]
    assert [o.metadata["dagster/row_count"].value for o in observed] == [48, 48]
    assert observed[1].metadata["run_progress"].value.startswith("2/2 partitions")
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.passed and evaluation.metadata["archives_compared"].value == 2


def test_a_year_is_built_from_the_public_archive_and_the_hourly_objects_of_the_days_it_lacks(
    tmp_path, replay_server, seaweedfs, s3_bucket
):
    settings = market_settings(tmp_path, replay_server.url, seaweedfs, s3_bucket, symbols=("BTCUSDT",))
    defs = build_definitions(settings)
    tags = year_range_tags(2024, 2024, "BTCUSDT", "BTCUSDT")
    result = run_job(defs, "compact_history", tags=tags, asset_selection=["history_1h"])
    meta = result.asset_materializations_for_node("history_1h")[0].metadata
    assert meta["dagster/row_count"].value == 366 * 24
    assert (meta["archive_files_downloaded"].value, meta["archive_files_reused"].value) == (12, 0)
    assert (meta["days_from_hourly"].value, meta["missing_candles"].value) == (0, 0)
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.passed
    again = run_job(defs, "compact_history", tags=tags, asset_selection=["history_1h"])
    meta = again.asset_materializations_for_node("history_1h")[0].metadata
    assert (meta["archive_files_downloaded"].value, meta["archive_files_reused"].value) == (0, 12)


def test_rerunning_a_compaction_writes_the_same_object(defs, settings):
    tags = year_range_tags(2025, 2025, "BTCUSDT", "BTCUSDT")
    run_job(defs, "compact_history", tags=tags, asset_selection=["history_1h"])
    store = object_store(settings)
    key = history_key("BTCUSDT", "1h", 2025)
    first = store.read_bytes(key)
    run_job(defs, "compact_history", tags=tags, asset_selection=["history_1h"])
    assert store.read_bytes(key) == first
    assert pq.ParquetFile(store.filesystem.open_input_file(store.path(key))).metadata.row_group(0).num_rows == 48


def test_the_check_fails_when_the_archive_and_its_days_disagree(defs, settings):
    tags = year_range_tags(2025, 2025, "BTCUSDT", "BTCUSDT")
    run_job(defs, "compact_history", tags=tags, asset_selection=["history_1h"])
    store = object_store(settings)
    key = history_key("BTCUSDT", "1h", 2025)
    archive = store.read_parquet(key)
    store.write_bytes(
        key, encode_history(archive.filter(pl.col("timestamp").dt.hour() != 3), dt.date(2025, 12, 31), {})
    )
    (evaluation,) = run_checks(defs, "history_1h", tags).get_asset_check_evaluations()
    assert not evaluation.passed
    assert evaluation.metadata["differing"].value == {
        "BTCUSDT|2025": {"archived_rows": 46, "hourly_rows": 48, "only_in_archive": 0, "only_in_hourly": 2}
    }


def test_the_daily_schedule_compacts_the_year_of_the_day_that_closed(defs):
    schedule = defs.get_schedule_def("history_daily_schedule")
    tick = dt.datetime(2027, 1, 1, 0, 20, tzinfo=dt.UTC)
    (request,) = schedule.evaluate_tick(dg.build_schedule_context(scheduled_execution_time=tick)).run_requests
    assert request.tags["dagster/asset_partition_range_start"] == "BTCUSDT|2026"
    assert request.tags["dagster/asset_partition_range_end"] == "SOLUSDT|2026"


def test_a_repaired_day_of_a_past_year_requests_that_years_archive_only(defs):
    with dg.instance_for_test() as instance:
        selection = dg.AssetSelection.assets("history_1h")
        first = dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=selection)
        run_job(
            defs,
            "ingest_1h",
            instance=instance,
            tags=partition_range_tags(FIRST_DAY, FIRST_DAY, "BTCUSDT", "BTCUSDT"),
        )
        second = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, asset_selection=selection, cursor=first.cursor
        )
        requested = second.get_requested_partitions(dg.AssetKey("history_1h"))
    assert first.total_requested == 0
    assert requested == {year_symbol_key(2024, "BTCUSDT")}
