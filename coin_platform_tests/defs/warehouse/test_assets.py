"""The warehouse_* assets materialized in process: the local deployment's DuckDB file, loaded from the
object store (SeaweedFS, after the replay ingest), the hot store (chDB) and the trading store."""

import datetime as dt

import dagster as dg
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from coin_platform.core.time import UTC_MS
from coin_platform.definitions import build_definitions
from coin_platform.defs.partitions import market_partitions
from coin_platform.defs.partitions import partition_range_tags as range_tags
from coin_platform.defs.resources import DuckDBWarehouseResource, build_resources
from coin_platform.storage.clickhouse import open_hot_store
from coin_platform.storage.layout import day_start
from coin_platform.storage.ohlcv import read_ohlcv_day
from coin_platform.trading.orders import Fill, OrderRequest
from coin_platform.trading.store import TradingStore
from coin_platform_tests.defs.harness import market_settings, object_store, run_job
from coin_platform_tests.trading.support import make_decision

DAY = dt.date(2024, 3, 9)
SYMBOL = "BTCUSDT"
MARKET_ASSETS = ["warehouse_ohlcv_1m", "warehouse_features_1m", "warehouse_candidates"]


@pytest.fixture(scope="module")
def settings(tmp_path_factory, replay_server, seaweedfs):
    tmp_path = tmp_path_factory.mktemp("warehouse_assets")
    bucket = "warehouse-assets-test"
    seaweedfs.client().create_bucket(Bucket=bucket)
    strategies = [{"name": "ema_crossover", "kind": "ema_crossover", "params": {"fast": 5, "slow": 20}}]
    base = market_settings(
        tmp_path,
        replay_server.url,
        seaweedfs,
        bucket,
        symbols=(SYMBOL,),
        intervals=("1m",),
        config={"strategies": strategies},
    )
    return base.model_copy(update={"config": base.config.model_copy(update={"history_start": DAY})})


@pytest.fixture(scope="module")
def defs(settings):
    defs = build_definitions(settings)
    run_job(
        defs,
        "ingest_1m",
        tags=range_tags(DAY, DAY, SYMBOL, SYMBOL),
        asset_selection=["raw_klines_1m", "ohlcv_1m", "features_1m", "candidates_1m"],
    )
    market = dg.define_asset_job(
        "warehouse_market", selection=MARKET_ASSETS, partitions_def=market_partitions(settings)
    )
    trading = dg.define_asset_job(
        "warehouse_trading", selection=["warehouse_decisions", "warehouse_orders", "warehouse_fills"]
    )
    return dg.Definitions.merge(defs, dg.Definitions(jobs=[market, trading]))


def warehouse(settings):
    resource = build_resources(settings)["warehouse"]
    assert isinstance(resource, DuckDBWarehouseResource)
    assert resource.duckdb.database == str(settings.coin_home / "warehouse" / "warehouse.duckdb")
    return resource.get_warehouse()


def metadata(result: dg.ExecuteInProcessResult, name: str) -> dict:
    (event,) = [e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(name)]
    return event.materialization.metadata


def test_market_loads_copy_the_stored_partition_and_a_rerun_leaves_the_same_rows(defs, settings):
    tags = range_tags(DAY, DAY, SYMBOL, SYMBOL)
    first = run_job(defs, "warehouse_market", tags=tags)
    target = warehouse(settings)
    candles = target.query("SELECT * FROM raw.ohlcv_1m ORDER BY open_time")
    stored = read_ohlcv_day(object_store(settings), "1m", SYMBOL, DAY)
    assert candles.height == 1440
    assert_frame_equal(
        candles.drop("symbol").with_columns(pl.col("open_time").cast(UTC_MS)),
        stored.sort("open_time"),
        check_exact=True,
    )
    features = target.query("SELECT count(*) AS n, min(open_time) AS first FROM raw.features_1m")
    assert features.rows() == [(1440, day_start(DAY))]
    candidates = target.query("SELECT * FROM raw.candidates ORDER BY open_time")
    with open_hot_store(build_resources(settings)["clickhouse"].get_config(), 3) as hot:
        recorded = hot.read_candidates(SYMBOL, "1m", day_start(DAY), day_start(DAY) + dt.timedelta(days=1))
    assert candidates.height == recorded.height > 0
    assert candidates["candidate_id"].to_list() == recorded["id"].to_list()

    meta = metadata(first, "warehouse_ohlcv_1m")
    assert meta["dagster/row_count"].value == 1440 and meta["table"].value == "raw.ohlcv_1m"
    assert meta["rows_by_partition"].value == {f"ohlcv_1m {DAY} {SYMBOL}": 1440}
    assert metadata(first, "warehouse_candidates")["dagster/row_count"].value == recorded.height

    run_job(defs, "warehouse_market", tags=tags)
    assert_frame_equal(target.query("SELECT * FROM raw.ohlcv_1m ORDER BY open_time"), candles, check_exact=True)
    assert_frame_equal(target.query("SELECT * FROM raw.candidates ORDER BY open_time"), candidates, check_exact=True)


def test_decisions_orders_and_fills_load_by_day(defs, settings):
    close = day_start(DAY) + dt.timedelta(hours=10)
    decision = make_decision(SYMBOL, "enter_long", 50_000.0, candle_close=close)
    order = OrderRequest(decision.id, SYMBOL, "buy", 0.002, False, 50_000.0)
    store = TradingStore(settings.coin_home / "trading" / "trading.duckdb")
    with store.transaction() as tx:
        tx.record_decision(decision)
        tx.record_published(decision.id, close + dt.timedelta(seconds=2))
        tx.record_pending(decision, order, broker="paper", created_at=close + dt.timedelta(seconds=3))
        tx.record_fill(order, 0, Fill(50_010.0, 0.002, 0.1, close + dt.timedelta(seconds=4)))

    result = run_job(defs, "warehouse_trading", tags={"dagster/partition": DAY.isoformat()})
    target = warehouse(settings)
    assert target.query("SELECT decision_id, action, model_version FROM raw.decisions").rows() == [
        (decision.id, decision.action, decision.model_version)
    ]
    assert target.query("SELECT client_order_id, status FROM raw.orders").rows() == [(decision.id, "PENDING")]
    assert target.query("SELECT client_order_id, seq, price FROM raw.fills").rows() == [(decision.id, 0, 50_010.0)]
    assert metadata(result, "warehouse_fills")["rows_by_partition"].value == {f"fills {DAY}": 1}

    # The next day holds none of them.
    run_job(defs, "warehouse_trading", tags={"dagster/partition": (DAY + dt.timedelta(days=1)).isoformat()})
    assert target.query("SELECT count(*) AS n FROM raw.fills")["n"][0] == 1
