"""The dbt models as Dagster assets: lineage from the warehouse loading assets, daily partitions on the
incremental marts, dbt tests as asset checks, and an in-process materialization over a DuckDB file."""

from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest
from dagster_duckdb import DuckDBResource
from polars.testing import assert_frame_equal

from coin_platform.core.intervals import SUPPORTED_INTERVALS
from coin_platform.defs import dbt
from coin_platform.defs.partitions import market_partitions
from coin_platform.defs.resources import DuckDBWarehouseResource, dbt_resource
from coin_platform.local.replay.warehouse import (
    platform_settings,
    warehouse_file,
)
from coin_platform.storage.warehouse_tables import RAW_TABLES

MARTS = [
    "mart_bars_hourly",
    "mart_bars_daily",
    "mart_features",
    "mart_candidate_outcomes",
    "mart_training_set",
    "mart_decision_outcomes",
    "mart_daily_performance",
]


@pytest.fixture
def settings(tmp_path):
    return platform_settings(tmp_path)


@pytest.fixture
def defs(settings):
    return dg.Definitions.merge(
        dbt.build_defs(settings, market_partitions(settings)),
        dg.Definitions(
            resources={"dbt": dbt_resource("local"), "warehouse": _warehouse(warehouse_file(settings.coin_home))}
        ),
    )


def _warehouse(path: Path) -> DuckDBWarehouseResource:
    return DuckDBWarehouseResource(duckdb=DuckDBResource(database=str(path)))


def _assets(defs: dg.Definitions) -> dict[str, dg.AssetsDefinition]:
    return {a.op.name: a for a in defs.assets}


def test_the_location_loads_without_a_warehouse_and_maps_sources_to_the_loading_assets(defs, settings):
    assert not warehouse_file(settings.coin_home).exists()
    graph = defs.resolve_asset_graph()
    dbt_keys = {key for a in defs.assets for key in a.keys}
    assert {graph.get(key).group_name for key in dbt_keys} == {"dbt"}
    deps = {key.path[-1]: {d.path[-1] for d in graph.get(key).parent_keys} for key in dbt_keys}
    assert deps["stg_candidates"] == {"warehouse_candidates"}
    for interval in SUPPORTED_INTERVALS:
        assert deps[f"stg_ohlcv_{interval}"] == {f"warehouse_ohlcv_{interval}"}
        assert deps[f"stg_features_{interval}"] == {f"warehouse_features_{interval}"}
    assert deps["stg_decisions"] == {"warehouse_decisions"}
    assert deps["stg_orders"] == {"warehouse_orders"} and deps["stg_fills"] == {"warehouse_fills"}
    sources = {d for parents in deps.values() for d in parents if d.startswith("warehouse_")}
    assert sources == {f"warehouse_{table}" for table in RAW_TABLES}
    assert deps["mart_training_set"] == {"mart_candidate_outcomes", "int_features"}


def test_incremental_marts_are_partitioned_by_day_and_views_are_not(defs, settings):
    assets = _assets(defs)
    daily, views = assets["dbt_daily_models"], assets["dbt_views"]
    assert sorted(k.path[-1] for k in daily.keys) == sorted(MARTS)
    days = market_partitions(settings).get_partitions_def_for_dimension("date")
    assert daily.partitions_def == days and views.partitions_def is None
    checks = {(c.asset_key.path[-1], c.name) for a in defs.assets for c in a.check_specs}
    assert any(asset == "mart_training_set" and name.startswith("no_lookahead") for asset, name in checks)
    assert ("stg_candidates", "relationships_stg_candidates_candle_key__candle_key__ref_int_features_") in checks


def _table(path, name: str, order: list[str]) -> pl.DataFrame:
    with duckdb.connect(str(path), read_only=True) as connection:
        return pl.from_arrow(connection.sql(f"select * from main.{name} order by {', '.join(order)}").to_arrow_table())


def test_one_day_materializes_in_process_with_its_checks_and_rebuilds_exactly_that_day(
    defs, built_warehouse, tmp_path, monkeypatch
):
    """The views and one day of the marts in one run over a built warehouse that lost that day's rows:
    the day's incremental window puts them back, equal to the full build, and every dbt test passes."""
    warehouse = built_warehouse.copy_to(tmp_path / "home")
    marts = {
        "mart_bars_daily": ["symbol", "open_time"],
        "mart_training_set": ["candidate_id"],
        "mart_daily_performance": ["day", "strategy"],
    }
    built = {name: _table(warehouse, name, order) for name, order in marts.items()}
    day = built_warehouse.days()[1]
    with duckdb.connect(str(warehouse)) as connection:
        connection.execute(f"delete from main.mart_bars_daily where day = '{day}'")
        connection.execute(f"delete from main.mart_training_set where cast(open_time as date) = '{day}'")
    monkeypatch.setenv("COIN_HOME", str(tmp_path / "home"))
    assets = _assets(defs)
    result = dg.materialize(
        [assets["dbt_views"], assets["dbt_daily_models"]],
        resources={"dbt": dbt_resource("local"), "warehouse": _warehouse(warehouse)},
        partition_key=day.isoformat(),
    )
    assert result.success
    materialized = {e.asset_key.path[-1]: e.partition for e in result.get_asset_materialization_events()}
    assert {name for name, partition in materialized.items() if partition == day.isoformat()} == set(MARTS)
    assert {name for name, partition in materialized.items() if partition is None} == {
        k.path[-1] for k in assets["dbt_views"].keys
    }
    evaluations = result.get_asset_check_evaluations()
    assert {e.asset_key.path[-1] for e in evaluations} >= {"mart_training_set", "stg_candidates", "int_candles"}
    assert [e.check_name for e in evaluations if not e.passed] == []
    for name, order in marts.items():
        assert_frame_equal(_table(warehouse, name, order), built[name])
