"""The dbt project's models as assets (dagster-dbt), and its tests as their asset checks.

Sources are the warehouse's raw tables, so each maps to the loading asset that fills it and the
lineage runs from raw klines through the warehouse into the marts. The incremental marts are
partitioned by UTC day: a run passes its days to dbt as `min_day`/`max_day`, which is the window the
models delete and insert (dbt_snowflake/macros/incremental.sql). Staging and intermediate models are
views, rebuilt unpartitioned. Both runs pass config.yaml's fee rate, so the labels count the fee
the platform trades with.
"""

import datetime as dt
import json
from collections.abc import Iterator, Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets
from filelock import FileLock

from coin_platform.defs.resources import DBT_EXECUTABLE, DBT_PROJECT_DIR, WAREHOUSE_POOL, WarehouseResource
from coin_platform.defs.warehouse.assets import warehouse_key

DBT_GROUP = "dbt"
INCREMENTAL = "config.materialized:incremental"

class WarehouseTranslator(DagsterDbtTranslator):
    """dbt sources keyed as the warehouse loading assets (`raw.{table}` is filled by `warehouse_{table}`);
    every dbt asset in group `dbt`."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return warehouse_key(dbt_resource_props["name"])
        return super().get_asset_key(dbt_resource_props)

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str:
        return DBT_GROUP


def prepared_project() -> DbtProject:
    """The dbt project with a current manifest: `dbt parse` when there is none or a project file (model,
    macro, test, yml) is newer, so `make dev`, tests and an edited model need no manual step, while a run
    process (or a deployment's image with its manifest built in) does not parse again. Parsing reads no
    warehouse, so the code location loads before any warehouse file exists.

    The parse uses DBT_EXECUTABLE (this interpreter's dbt), under a lock so two processes never write
    the manifest at once.
    """
    project = DbtProject(project_dir=DBT_PROJECT_DIR)
    target = project.project_dir / project.target_path
    target.mkdir(parents=True, exist_ok=True)
    with FileLock(target / "parse.lock"):
        if _manifest_is_stale(project):
            dbt = DbtCliResource(project_dir=project, dbt_executable=str(DBT_EXECUTABLE))
            dbt.cli(["parse", "--quiet"], target_path=project.target_path).wait()
    return project


def _manifest_is_stale(project: DbtProject) -> bool:
    if not project.manifest_path.exists():
        return True
    built = project.manifest_path.stat().st_mtime
    generated = (project.project_dir / project.target_path, project.project_dir / "logs")
    return any(
        path.stat().st_mtime > built
        for pattern in ("*.sql", "*.yml")
        for path in project.project_dir.rglob(pattern)
        if not any(path.is_relative_to(folder) for folder in generated)
    )


def day_vars(window: dg.TimeWindow, fee_rate: float) -> dict[str, object]:
    """dbt vars for a run over the UTC days of `window` (its end is exclusive)."""
    last_day = (window.end - dt.timedelta(days=1)).date()
    return {"min_day": window.start.date().isoformat(), "max_day": last_day.isoformat(), "fee_rate": fee_rate}


def build_dbt_assets(
    project: DbtProject, days: dg.DailyPartitionsDefinition, fee_rate: float
) -> list[dg.AssetsDefinition]:
    """The views (unpartitioned) and the incremental marts (one partition per UTC day, a range per run)."""
    translator = WarehouseTranslator()

    @dbt_assets(
        manifest=project.manifest_path,
        project=project,
        exclude=INCREMENTAL,
        name="dbt_views",
        dagster_dbt_translator=translator,
        pool=WAREHOUSE_POOL,
    )
    def dbt_views(
        context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource
    ) -> Iterator[object]:
        holder = f"run {context.run.run_id} (dbt_views)"
        with warehouse.get_warehouse(holder).exclusive(holder):
            yield from dbt.cli(["build", "--vars", json.dumps({"fee_rate": fee_rate})], context=context).stream()

    @dbt_assets(
        manifest=project.manifest_path,
        project=project,
        select=INCREMENTAL,
        name="dbt_daily_models",
        partitions_def=days,
        backfill_policy=dg.BackfillPolicy.single_run(),
        dagster_dbt_translator=translator,
        pool=WAREHOUSE_POOL,
    )
    def dbt_daily_models(
        context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource
    ) -> Iterator[object]:
        dbt_vars = day_vars(context.partition_time_window, fee_rate)
        context.log.info(f"dbt build of the incremental models for {dbt_vars['min_day']}..{dbt_vars['max_day']}")
        holder = f"run {context.run.run_id} (dbt_daily_models)"
        with warehouse.get_warehouse(holder).exclusive(holder):
            yield from dbt.cli(["build", "--vars", json.dumps(dbt_vars)], context=context).stream()

    return [dbt_views, dbt_daily_models]
