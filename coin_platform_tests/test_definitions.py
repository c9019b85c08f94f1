"""The code location as `dagster dev` loads it, from the repository's own config.yaml."""

import dagster as dg
import pytest

from coin_platform.definitions import build_definitions
from coin_platform.settings import PROJECT_ROOT, Settings, load_settings


@pytest.fixture(scope="module")
def settings(tmp_path_factory) -> Settings:
    home = tmp_path_factory.mktemp("coin_home")
    return load_settings({"COIN_CONFIG": str(PROJECT_ROOT / "config.yaml"), "COIN_HOME": str(home)})


@pytest.fixture(scope="module")
def defs(settings) -> dg.Definitions:
    """Built once: the tests only read it."""
    return build_definitions(settings)


def test_the_code_location_loads_and_validates(settings, defs):
    dg.Definitions.validate_loadable(defs)
    repository = defs.get_repository_def()
    intervals = settings.config.intervals
    assert {j.name for j in repository.get_all_jobs()} >= {f"ingest_{i}" for i in intervals} | {
        "compact_history",
        "ingest_funding",
        "trade_job",
        "order_job",
        "reconcile_orders_job",
        "backup",
    }
    assert {s.name for s in repository.schedule_defs} == {f"live_{i}_schedule" for i in intervals} | {
        "history_daily_schedule",
        "funding_schedule",
        "reconcile_orders_schedule",
        "backtest_parity_schedule",
        "backup_schedule",
    }
    assert {s.name for s in repository.sensor_defs} == {
        "repair_automation_sensor",
        "candidate_sensor",
        "run_failure_alert_sensor",
        "freshness_checks_sensor",
        "freshness_alert_sensor",
    }
    market = defs.get_assets_def("ohlcv_1m").partitions_def
    assert [d.name for d in market.partitions_defs] == ["date", "symbol"]
    assert market.partitions_defs[1].partitions_def.get_partition_keys() == list(settings.config.symbols)
    assert defs.get_assets_def("funding_rates").partitions_def == market  # day × symbol, like the candles


def test_every_job_runs_its_steps_in_its_run_worker(defs):
    """A process per step would load the code location again: seconds on every UI materialization and backtest."""
    jobs = defs.get_repository_def().get_all_jobs()
    assert {job.name: job.executor_def.name for job in jobs} == {job.name: "in_process" for job in jobs}


def test_the_lineage_runs_from_raw_klines_to_positions(settings, defs):
    """The global lineage is one graph: the trading group hangs off the candidates it comes from."""
    graph = defs.resolve_asset_graph()
    path = ["raw_klines_1m", "ohlcv_1m", "features_1m", "candidates_1m", "decisions", "orders", "positions"]
    for upstream, downstream in zip(path, path[1:], strict=False):
        assert dg.AssetKey(upstream) in graph.get(dg.AssetKey(downstream)).parent_keys, (upstream, downstream)
    decisions = graph.get(dg.AssetKey("decisions")).parent_keys
    assert decisions == {dg.AssetKey(f"candidates_{i}") for i in settings.config.intervals}


def test_every_live_asset_has_a_freshness_check_that_the_live_path_does_not_run(tmp_path):
    settings = load_settings({"COIN_CONFIG": str(PROJECT_ROOT / "config.yaml"), "COIN_HOME": str(tmp_path)})
    defs = build_definitions(settings)
    freshness = {key for key in defs.resolve_asset_graph().asset_check_keys if key.name == "freshness_check"}
    live = {f"{asset}_{i}" for asset in ("ohlcv", "hot_ohlcv", "features") for i in settings.config.intervals}
    assert {key.asset_key.to_user_string() for key in freshness} == live
    for interval in settings.config.intervals:
        steps = {node.name for node in defs.resolve_job_def(f"ingest_{interval}").graph.node_defs}
        assert f"ohlcv_{interval}_checks" in steps and not [s for s in steps if s.startswith("freshness_check")]
