"""hot_ohlcv_{interval} assets in process against SeaweedFS, the replay server and chDB on disk."""

import datetime as dt

import dagster as dg
import polars as pl
import pytest

from coin_platform.definitions import build_definitions
from coin_platform.defs.partitions import HOT_TTL_MARGIN
from coin_platform.defs.partitions import partition_range_tags as range_tags
from coin_platform.market.client import BinanceFuturesClient
from coin_platform.market.quality import check_ohlc_sanity
from coin_platform.storage.clickhouse import open_clickhouse
from coin_platform.storage.features import read_feature_days
from coin_platform.storage.layout import day_start, raw_klines_key
from coin_platform.storage.ohlcv import read_ohlcv_day
from coin_platform_tests.defs.harness import (
    check_results,
    market_settings,
    object_store,
    run_checks,
    run_job,
)

TODAY = dt.datetime.now(dt.UTC).date()
YESTERDAY = TODAY - dt.timedelta(days=1)
INTERVALS = ("1m", "15m", "1h")


@pytest.fixture
def settings(tmp_path, replay_server, seaweedfs, s3_bucket):
    return market_settings(
        tmp_path, replay_server.url, seaweedfs, s3_bucket, symbols=("BTCUSDT", "ETHUSDT")
    )


@pytest.fixture
def defs(settings):
    return build_definitions(settings)


@pytest.fixture
def clickhouse(defs):
    return defs.resources["clickhouse"]


def _metadata(result: dg.ExecuteInProcessResult, name: str) -> dict:
    return result.asset_materializations_for_node(name)[0].metadata


def test_hot_tables_hold_each_partition_once_and_the_rollup_matches(defs, settings, clickhouse):
    tags = range_tags(YESTERDAY, TODAY, "BTCUSDT", "BTCUSDT")
    results = [run_job(defs, f"ingest_{interval}", tags=tags) for interval in INTERVALS]
    result = results[0]
    store = object_store(settings)
    source = {
        (i, d): read_ohlcv_day(store, i, "BTCUSDT", d).height for i in INTERVALS for d in (YESTERDAY, TODAY)
    }
    assert source[("1m", YESTERDAY)] == 1440 and source[("1h", YESTERDAY)] == 24
    for interval, result in zip(INTERVALS, results, strict=True):
        metadata = _metadata(result, f"hot_ohlcv_{interval}")
        expected = source[(interval, YESTERDAY)] + source[(interval, TODAY)]
        assert metadata["dagster/row_count"].value == expected
        assert metadata["final_rows"].value == expected
        assert metadata["skipped_partitions"].value == []
    evaluations = [
        e for result in results for e in result.get_asset_check_evaluations() if e.check_name == "matches_1m_rollup"
    ]
    assert all(e.passed for e in evaluations)
    sources = [check_results(result)["equals_ohlcv_objects"] for result in results]
    assert [e.passed for e in sources] == [True] * 3
    compared = {e.asset_key.to_user_string(): e.metadata["candles_compared"].value for e in evaluations}
    assert compared["hot_ohlcv_15m"] >= 96 and compared["hot_ohlcv_1h"] >= 24

    # Rerun only the hot 1m asset: no duplicates, and the 15m/1h rollups stay exact.
    rerun = run_job(defs, "ingest_1m", tags=tags, asset_selection=["hot_ohlcv_1m"])
    assert _metadata(rerun, "hot_ohlcv_1m")["final_rows"].value == source[("1m", YESTERDAY)] + source[("1m", TODAY)]
    with clickhouse.open() as hot_store:
        counts = hot_store.hot_counts("1m", ["BTCUSDT"], [YESTERDAY])
        raw_rows = hot_store.client.command("SELECT count() FROM coin.ohlcv_1m")
    assert counts == {("BTCUSDT", YESTERDAY): 1440}
    assert raw_rows == source[("1m", YESTERDAY)] + source[("1m", TODAY)]
    for name in ("hot_ohlcv_15m", "hot_ohlcv_1h"):
        checked = run_checks(defs, name, tags)
        evaluation = check_results(checked)["matches_1m_rollup"]
        assert evaluation.passed, evaluation.description
        assert evaluation.metadata["candles_compared"].value >= 24


def test_the_source_check_names_hot_candles_that_drifted_from_the_objects(defs, clickhouse):
    tags = range_tags(YESTERDAY, YESTERDAY, "BTCUSDT", "BTCUSDT")
    run_job(defs, "ingest_1m", tags=tags)
    changed = dt.datetime.combine(YESTERDAY, dt.time(10, 0), tzinfo=dt.UTC)
    with clickhouse.open() as hot_store:
        client = hot_store.client
        client.command(  # a newer version of one candle with another close, and one candle gone
            "INSERT INTO coin.ohlcv_1m SELECT * REPLACE (close + 1 AS close, version + 1 AS version) "
            "FROM coin.ohlcv_1m FINAL WHERE symbol = 'BTCUSDT' AND open_time = {t:DateTime64(3, 'UTC')}",
            parameters={"t": changed.strftime("%Y-%m-%d %H:%M:%S")},
        )
        client.command(
            "DELETE FROM coin.ohlcv_1m WHERE symbol = 'BTCUSDT' AND open_time = {t:DateTime64(3, 'UTC')}",
            parameters={"t": (changed + dt.timedelta(minutes=5)).strftime("%Y-%m-%d %H:%M:%S")},
        )
    evaluation = check_results(run_checks(defs, "hot_ohlcv_1m", tags))["equals_ohlcv_objects"]
    assert not evaluation.passed
    assert evaluation.metadata["failed_partitions"].value == {
        f"{YESTERDAY}|BTCUSDT": {
            "only_in_hot": 0,
            "only_in_source": 1,
            "differing_open_times": [changed.isoformat()],
        }
    }


def test_rerunning_only_an_ohlcv_day_requests_its_hot_and_feature_days(defs):
    selection = dg.AssetSelection.assets("hot_ohlcv_1m", "features_1m")
    with dg.instance_for_test() as instance:
        run_job(defs, "ingest_1m", instance=instance, tags=range_tags(YESTERDAY, TODAY, "BTCUSDT", "BTCUSDT"))
        first = dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=selection)
        run_job(
            defs,
            "ingest_1m",
            instance=instance,
            tags=range_tags(YESTERDAY, YESTERDAY, "BTCUSDT", "BTCUSDT"),
            asset_selection=["raw_klines_1m", "ohlcv_1m"],
        )
        second = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, asset_selection=selection, cursor=first.cursor
        )
    assert first.total_requested == 0

    def key(day: dt.date) -> dg.MultiPartitionKey:
        return dg.MultiPartitionKey({"date": day.isoformat(), "symbol": "BTCUSDT"})

    assert second.get_requested_partitions(dg.AssetKey("hot_ohlcv_1m")) == {key(YESTERDAY)}
    assert second.get_requested_partitions(dg.AssetKey("features_1m")) == {key(YESTERDAY), key(TODAY)}


def test_partitions_older_than_retention_are_skipped_with_a_note(defs, clickhouse):
    old = TODAY - dt.timedelta(days=5)  # market_settings keeps the default 3-day retention
    result = run_job(
        defs,
        "ingest_1m",
        tags=range_tags(old, old, "BTCUSDT", "ETHUSDT"),
        asset_selection=["hot_ohlcv_1m"],
    )
    assert result.success
    metadata = _metadata(result, "hot_ohlcv_1m")
    assert metadata["dagster/row_count"].value == 0
    assert metadata["skipped_partitions"].value == [f"{old}|BTCUSDT", f"{old}|ETHUSDT"]
    assert "older than the 3-day retention" in metadata["note"].value
    with open_clickhouse(clickhouse.get_config()) as client:
        tables = client.command("SELECT count() FROM system.tables WHERE database = 'coin'")
    assert tables == 0  # not even opened for migrations: nothing to do



def test_a_day_at_the_retention_edge_keeps_only_candles_that_cannot_expire_before_they_are_counted(
    defs, clickhouse
):
    """ClickHouse's TTL merges drop expired rows at any moment: candles within HOT_TTL_MARGIN of their TTL are
    left out, so the FINAL count after the insert and the source check never race them."""
    edge = TODAY - dt.timedelta(days=3)  # market_settings' 3-day retention ends inside this day
    result = run_job(defs, "ingest_1m", tags=range_tags(edge, edge, "BTCUSDT", "BTCUSDT"))
    assert result.success
    metadata = _metadata(result, "hot_ohlcv_1m")
    with clickhouse.open() as hot_store:
        hot = hot_store.read_hot_ohlcv("1m", "BTCUSDT", day_start(edge), day_start(edge) + dt.timedelta(days=1))
    now = dt.datetime.now(dt.UTC)
    assert hot.height == metadata["dagster/row_count"].value > 0
    assert metadata["expired_rows_left_out"].value + hot.height == 1440
    # The oldest hot candle is still at least HOT_TTL_MARGIN (less this test's own seconds) from its TTL.
    assert hot["open_time"].min() > now - dt.timedelta(days=3) + HOT_TTL_MARGIN - dt.timedelta(minutes=2)
    assert check_results(result)["equals_ohlcv_objects"].passed


def test_the_live_path_reads_every_symbols_latest_features_in_one_query(defs, clickhouse):
    run_job(defs, "ingest_1m", tags=range_tags(YESTERDAY, TODAY, "BTCUSDT", "ETHUSDT"))
    with clickhouse.open() as hot_store:
        latest = hot_store.latest_features("1m", ["BTCUSDT", "ETHUSDT"])
        newest = hot_store.latest_closed("1m", ["BTCUSDT", "ETHUSDT"])
        stored = hot_store.client.command("SELECT count() FROM coin.features_1m FINAL")
        candles = hot_store.client.command("SELECT count() FROM coin.ohlcv_1m FINAL")
    assert latest["symbol"].to_list() == ["BTCUSDT", "ETHUSDT"]
    assert dict(zip(latest["symbol"], latest["open_time"], strict=True)) == newest
    assert latest.select("ema_50", "rsi_14", "macd", "atr_14").null_count().row(0) == (0, 0, 0, 0)
    assert stored == candles  # one feature row per hot candle


def test_impossible_candles_from_the_exchange_reach_neither_ohlcv_nor_hot_store_nor_features(
    tmp_path, replay_server, start_replay, seaweedfs, s3_bucket
):
    """NaN, inf, negative, high < low and open > high rows: kept in raw as evidence, quarantined after."""
    faulty = start_replay(faults="bad_candles:at=1")
    settings = market_settings(tmp_path, faulty.url, seaweedfs, s3_bucket, symbols=("BTCUSDT",))
    defs = build_definitions(settings)
    tags = range_tags(YESTERDAY, YESTERDAY, "BTCUSDT", "BTCUSDT")
    result = run_job(defs, "ingest_1m", tags=tags)
    store = object_store(settings)
    start = dt.datetime.combine(YESTERDAY, dt.time(), tzinfo=dt.UTC)
    with BinanceFuturesClient(replay_server.url) as client:
        clean = client.fetch_klines("BTCUSDT", "1m", start, start + dt.timedelta(days=1))
    raw = store.read_parquet(raw_klines_key("1m", "BTCUSDT", YESTERDAY))
    spoiled = raw.join(clean, on=raw.columns, how="anti")["open_time"]
    assert spoiled.len() == 6 and raw.height == clean.height == 1440  # the raw layer keeps what was sent

    ohlcv = [e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey("ohlcv_1m")]
    metadata = ohlcv[0].materialization.metadata
    assert metadata["quarantined_candles"].value == 6
    quarantined = metadata["quarantined"].value
    assert [q["open_time"] for q in quarantined] == [t.isoformat() for t in spoiled]
    assert all(q["reason"] and q["symbol"] == "BTCUSDT" for q in quarantined)
    assert metadata["missing_candles"].value == 6
    assert metadata["dagster/row_count"].value == 1434

    objects = read_ohlcv_day(store, "1m", "BTCUSDT", YESTERDAY)
    features = read_feature_days(store, "1m", "BTCUSDT", [YESTERDAY])
    with defs.resources["clickhouse"].open() as hot_store:
        hot = hot_store.read_hot_ohlcv("1m", "BTCUSDT", start, start + dt.timedelta(days=1))
        hot_features = hot_store.client.query(  # the spoiled candles' feature rows, if any
            "SELECT count() FROM coin.features_1m FINAL "
            "WHERE symbol = 'BTCUSDT' AND open_time IN {t:Array(DateTime64(3, 'UTC'))}",
            parameters={"t": [f"{t:%Y-%m-%d %H:%M:%S}.000" for t in spoiled.dt.replace_time_zone(None).to_list()]},
        ).result_rows[0][0]
    assert hot.equals(objects) and objects.height == 1434
    for frame in (objects, hot, features):
        assert not frame["open_time"].is_in(spoiled.implode()).any()
    assert check_ohlc_sanity(objects).passed
    assert hot_features == 0
    # The signals go on after the gap: no NaN carried through the EMAs for the rest of the day.
    after = features.filter(pl.col("open_time") > spoiled.max())
    assert after.height > 0
    for name in ("ema_20", "ema_50", "macd", "macd_signal", "rsi_14"):
        assert after[name].is_finite().all(), name

    checks = check_results(result)
    assert checks["ohlc_sanity"].passed
    assert not checks["no_gaps"].passed and checks["no_gaps"].severity == dg.AssetCheckSeverity.WARN
