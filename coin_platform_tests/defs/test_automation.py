"""The repair sensor evaluates the automation conditions of exactly the derived assets."""

import dagster as dg

from coin_platform.definitions import build_definitions
from coin_platform.defs.automation import (
    REBUILD_AFTER_INPUT_REPAIR,
    REBUILD_PAST_YEAR_ON_REPAIR,
    rebuild_inside_retention,
)
from coin_platform.settings import PROJECT_ROOT, load_settings


def test_the_repair_sensor_targets_the_derived_assets_and_each_has_its_condition(tmp_path):
    settings = load_settings({"COIN_CONFIG": str(PROJECT_ROOT / "config.yaml"), "COIN_HOME": str(tmp_path)})
    defs = build_definitions(settings)
    graph = defs.resolve_asset_graph()
    sensor = defs.get_sensor_def("repair_automation_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    targets = sensor.asset_selection.resolve(graph)
    derived = {"history", "hot_ohlcv", "features", "candidates"}
    assert targets == {dg.AssetKey(f"{name}_{i}") for name in derived for i in settings.config.intervals}
    for interval in settings.config.intervals:
        assert graph.get(dg.AssetKey(f"features_{interval}")).automation_condition == REBUILD_AFTER_INPUT_REPAIR
        assert graph.get(dg.AssetKey(f"candidates_{interval}")).automation_condition == REBUILD_AFTER_INPUT_REPAIR
        assert graph.get(dg.AssetKey(f"history_{interval}")).automation_condition == REBUILD_PAST_YEAR_ON_REPAIR
        # The hot store follows repairs only inside its retention.
        hot = graph.get(dg.AssetKey(f"hot_ohlcv_{interval}")).automation_condition
        assert hot == rebuild_inside_retention(settings.config.retention_days)
    assert all(graph.get(key).automation_condition is None for key in graph.get_all_asset_keys() - targets)
