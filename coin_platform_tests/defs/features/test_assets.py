"""features_{interval} in process against SeaweedFS and the replay server, after the ingest job."""

import datetime as dt

import dagster as dg
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from coin_platform.definitions import build_definitions
from coin_platform.defs.partitions import partition_range_tags as range_tags
from coin_platform.features import FEATURE_SCHEMA, compute_features
from coin_platform.loader import load_ohlcv
from coin_platform.storage.features import read_feature_days
from coin_platform.storage.layout import day_start, features_day_keys
from coin_platform_tests.defs.harness import market_settings, object_store, run_job

HISTORY_START = dt.date(2024, 3, 8)
D1, D2, D3 = (HISTORY_START + dt.timedelta(days=i) for i in (1, 2, 3))
SYMBOL = "BTCUSDT"


@pytest.fixture
def settings(tmp_path, replay_server, seaweedfs, s3_bucket):
    base = market_settings(tmp_path, replay_server.url, seaweedfs, s3_bucket, symbols=(SYMBOL, "ETHUSDT"))
    config = base.config.model_copy(update={"history_start": HISTORY_START})
    return base.model_copy(update={"config": config})


@pytest.fixture
def defs(settings):
    return build_definitions(settings)


def _metadata(result: dg.ExecuteInProcessResult) -> dict:
    return result.asset_materializations_for_node("features_1m")[0].metadata


def test_features_built_day_by_day_equal_one_full_history_computation(defs, settings):
    run_job(
        defs,
        "ingest_1m",
        tags=range_tags(HISTORY_START, D3, SYMBOL, SYMBOL),
        asset_selection=["raw_klines_1m", "ohlcv_1m"],
    )
    results = [
        run_job(defs, "ingest_1m", tags=range_tags(d, d, SYMBOL, SYMBOL), asset_selection=["features_1m"])
        for d in (D1, D2, D3)
    ]
    store = object_store(settings)
    assert store.list_keys(f"features/1m/{SYMBOL}/") == [
        k for d in (D1, D2, D3) for k in features_day_keys("1m", SYMBOL, d)
    ]
    stored = read_feature_days(store, "1m", SYMBOL, [D1, D2, D3])
    candles = load_ohlcv(
        [SYMBOL], day_start(HISTORY_START), day_start(D3) + dt.timedelta(days=1, milliseconds=-1), "1m", store
    )
    expected = compute_features(candles).drop("symbol").filter(pl.col("open_time") >= day_start(D1))
    assert stored.height == 3 * 1440 and stored.schema == pl.Schema(FEATURE_SCHEMA)
    assert_frame_equal(stored, expected, check_exact=True)

    metadata = [_metadata(r) for r in results]
    assert [m["dagster/row_count"].value for m in metadata] == [1440, 1440, 1440]
    assert [m["warmup_rows"].value for m in metadata] == [1440, 2880, 4320]
    assert [m["files_written"].value for m in metadata] == [24, 24, 24]
    assert metadata[0]["days"].value == {SYMBOL: [D1.isoformat()]}
    assert metadata[2]["first_open_time"].value == day_start(D3).isoformat()
    assert metadata[2]["last_open_time"].value == (day_start(D3) + dt.timedelta(hours=23, minutes=59)).isoformat()
    assert metadata[0]["history_start"].value == HISTORY_START.isoformat()
    assert "ema_50" in metadata[0]["preview"].value

    # The first day of history carries the null warm-up; a symbol without candles writes nothing.
    first = run_job(
        defs,
        "ingest_1m",
        tags=range_tags(HISTORY_START, HISTORY_START, SYMBOL, "ETHUSDT"),
        asset_selection=["features_1m"],
    )
    meta = _metadata(first)
    assert meta["dagster/row_count"].value == 1440 and meta["warmup_rows"].value == 0
    assert meta["partitions"].value == 2
    warm = read_feature_days(store, "1m", SYMBOL, [HISTORY_START])
    assert warm["ema_50"].null_count() == 49 and warm["ema_50"][49] is not None
    assert store.list_keys("features/1m/ETHUSDT/") == []


def test_reingesting_a_day_requests_the_existing_later_feature_days_that_read_it(defs):
    selection = dg.AssetSelection.assets("features_1h")
    with dg.instance_for_test() as instance:
        run_job(defs, "ingest_1h", instance=instance, tags=range_tags(D1, D3, SYMBOL, "ETHUSDT"))
        first = dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=selection)
        run_job(defs, "ingest_1h", instance=instance, tags=range_tags(D1, D1, SYMBOL, SYMBOL))
        second = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, asset_selection=selection, cursor=first.cursor
        )
        third = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, asset_selection=selection, cursor=second.cursor
        )
    assert first.total_requested == 0
    # D1 was rebuilt in the repair run itself; ETHUSDT's days do not read BTCUSDT's.
    assert second.get_requested_partitions(dg.AssetKey("features_1h")) == {
        dg.MultiPartitionKey({"date": d.isoformat(), "symbol": SYMBOL}) for d in (D2, D3)
    }
    assert third.total_requested == 0
