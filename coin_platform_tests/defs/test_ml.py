"""The model assets in process: marts in a DuckDB file, models in SeaweedFS; promotion blocks or promotes."""

import datetime as dt

import dagster as dg
import duckdb
import polars as pl
import pytest

from coin_platform.defs.ml import build_defs
from coin_platform.defs.resources import ObjectStoreResource
from coin_platform.local.replay.training import REPLAY_START, REPLAY_SYMBOLS, replay_training_frame
from coin_platform.local.replay.warehouse import replay_candles
from coin_platform.ml.registry import ModelRegistry
from coin_platform.settings import Settings
from coin_platform.storage.object_store import ObjectStore
from coin_platform_tests.defs.harness import market_settings

DAYS = 10
STRATEGIES = [
    {"name": "rsi_reversal", "kind": "rsi_reversal"},
    {"name": "ema_crossover", "kind": "ema_crossover", "params": {"fast": 5, "slow": 20}},
    {"name": "macd_crossover", "kind": "macd_crossover"},
]


class DuckDBMarts:
    """The warehouse as the model side reads it: read-only queries on one DuckDB file."""

    def __init__(self, path: str) -> None:
        self.path = path

    def get_warehouse(self, holder: str = "") -> "DuckDBMarts":
        return self

    def query(self, sql: str) -> pl.DataFrame:
        with duckdb.connect(self.path, read_only=True) as connection:
            return pl.from_arrow(connection.sql(sql).to_arrow_table())


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> DuckDBMarts:
    path = str(tmp_path_factory.mktemp("warehouse") / "warehouse.duckdb")
    training = replay_training_frame(days=DAYS)
    candles = pl.concat([replay_candles(s, "1m", start=REPLAY_START, days=DAYS) for s in REPLAY_SYMBOLS])
    performance = pl.DataFrame({
        "day": [dt.date(2024, 3, 1), dt.date(2024, 3, 2)], "strategy": ["rsi_reversal"] * 2,
        "candidates": [12, 9], "decisions": [12, 9], "acted": [5, 3], "orders": [5, 3], "fills": [5, 3],
        "paper_pnl": [1.5, -0.5], "hit_rate": [0.4, 0.33],
    })
    outcomes = pl.DataFrame(schema={"model_version": pl.String, "action": pl.String, "hit": pl.Boolean})
    with duckdb.connect(path) as connection:
        connection.execute("create schema raw")
        for name, frame in {"main.mart_training_set": training, "raw.ohlcv_1m": candles,
                            "main.mart_daily_performance": performance,
                            "main.mart_decision_outcomes": outcomes}.items():
            connection.register("frame", frame.to_arrow())
            connection.execute(f"create table {name} as select * from frame")
            connection.unregister("frame")
    return DuckDBMarts(path)


@pytest.fixture
def settings(tmp_path, seaweedfs, s3_bucket) -> Settings:
    return market_settings(tmp_path, "http://127.0.0.1:9", seaweedfs, s3_bucket, REPLAY_SYMBOLS, ("1m",),
                           config={"strategies": STRATEGIES})


def materialize(settings, warehouse, resource: ObjectStoreResource, threshold: float) -> dg.ExecuteInProcessResult:
    defs = build_defs(settings)
    return dg.materialize(
        [*defs.assets, *defs.asset_checks],
        selection=["training_dataset", "signal_model", "model_evaluation"],
        resources={"warehouse": warehouse, "object_store": resource},
        run_config={"ops": {"signal_model": {"config": {"threshold": threshold}}}},
        raise_on_error=False,
    )


def test_a_model_that_beats_the_baselines_is_promoted_and_one_that_does_not_is_blocked(
    settings, warehouse, seaweedfs, s3_bucket
):
    resource = ObjectStoreResource(bucket=s3_bucket, endpoint_url=seaweedfs.endpoint_url, region=seaweedfs.region,
                                   access_key_id=seaweedfs.access_key, secret_access_key=seaweedfs.secret_key)
    registry = ModelRegistry(ObjectStore.s3(s3_bucket, endpoint_url=seaweedfs.endpoint_url,
                                            access_key=seaweedfs.access_key, secret_key=seaweedfs.secret_key,
                                            region=seaweedfs.region))
    good = materialize(settings, warehouse, resource, threshold=0.35)
    (promotion,) = [e for e in good.get_asset_check_evaluations() if e.check_name == "promotion"]
    evaluation = good.asset_materializations_for_node("model_evaluation")[0].metadata
    assert promotion.passed, evaluation["why"].value
    first = registry.versions()[-1]
    assert registry.promoted_version() == first
    assert "always_act" in evaluation["scorers"].value and "gated return" in evaluation["backtest"].value
    model_meta = good.asset_materializations_for_node("signal_model")[0].metadata
    assert model_meta["version"].value == first and model_meta["reliability"].value.startswith("![reliability]")

    # a model that says yes to nothing has no precision to beat always-act with: blocked, pointer unchanged
    silent = materialize(settings, warehouse, resource, threshold=0.999)
    (blocked,) = [e for e in silent.get_asset_check_evaluations() if e.check_name == "promotion"]
    assert not blocked.passed and "says yes to nothing" in blocked.metadata["why"].value
    assert registry.versions()[-1] != first and registry.promoted_version() == first


def test_the_drift_check_waits_for_enough_live_decisions_and_the_daily_report_charts_the_marts(
    settings, warehouse, seaweedfs, s3_bucket
):
    resource = ObjectStoreResource(bucket=s3_bucket, endpoint_url=seaweedfs.endpoint_url, region=seaweedfs.region,
                                   access_key_id=seaweedfs.access_key, secret_access_key=seaweedfs.secret_key)
    defs = build_defs(settings)
    result = dg.materialize([*defs.assets, *defs.asset_checks], selection=["daily_report"],
                            resources={"warehouse": warehouse, "object_store": resource})
    report = result.asset_materializations_for_node("daily_report")[0].metadata
    assert report["days"].value == 2 and report["charts"].value.startswith("![daily performance](data:image/png")
    assert "paper_pnl" in report["report"].value
