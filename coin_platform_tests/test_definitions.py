"""The code location as `dagster dev` loads it, from the repository's own config.yaml."""

import dagster as dg

from coin_platform.definitions import build_definitions
from coin_platform.settings import PROJECT_ROOT, load_settings


def test_the_code_location_loads_and_validates(tmp_path):
    settings = load_settings({"COIN_CONFIG": str(PROJECT_ROOT / "config.yaml"), "COIN_HOME": str(tmp_path)})
    defs = build_definitions(settings)
    dg.Definitions.validate_loadable(defs)
    repository = defs.get_repository_def()
    intervals = settings.config.intervals
    assert {j.name for j in repository.get_all_jobs()} >= {f"ingest_{i}" for i in intervals} | {
        "compact_history",
        "ingest_funding",
        "inference_job",
        "order_job",
        "reconcile_orders_job",
    }
    assert {s.name for s in repository.schedule_defs} == {f"live_{i}_schedule" for i in intervals} | {
        "history_daily_schedule",
        "funding_schedule",
        "reconcile_orders_schedule",
        "backtest_parity_schedule",
    }
    assert {s.name for s in repository.sensor_defs} == {
        "repair_automation_sensor",
        "candidate_sensor",
        "decision_sensor",
        "run_failure_alert_sensor",
    }
    market = defs.get_assets_def("ohlcv_1m").partitions_def
    assert [d.name for d in market.partitions_defs] == ["date", "symbol"]
    assert market.partitions_defs[1].partitions_def.get_partition_keys() == list(settings.config.symbols)
    assert defs.get_assets_def("funding_rates").partitions_def == market  # day × symbol, like the candles


def test_the_lineage_runs_from_raw_klines_to_positions(tmp_path):
    """The global lineage is one graph: the trading group hangs off the candidates it comes from."""
    settings = load_settings({"COIN_CONFIG": str(PROJECT_ROOT / "config.yaml"), "COIN_HOME": str(tmp_path)})
    graph = build_definitions(settings).resolve_asset_graph()
    path = ["raw_klines_1m", "ohlcv_1m", "features_1m", "candidates_1m", "decisions", "orders", "positions"]
    for upstream, downstream in zip(path, path[1:], strict=False):
        assert dg.AssetKey(upstream) in graph.get(dg.AssetKey(downstream)).parent_keys, (upstream, downstream)
    decisions = graph.get(dg.AssetKey("decisions")).parent_keys
    assert decisions == {dg.AssetKey(f"candidates_{i}") for i in settings.config.intervals}
