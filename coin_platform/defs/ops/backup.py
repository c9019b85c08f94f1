"""The `backup` job and its schedule: the platform's state into the object store (coin_platform.backup).

`backup_parts` is the one place the stores of a deployment become backup parts, for this job and
for `coin backup` / `coin restore`: the trading store, the DuckDB warehouse (Snowflake keeps its own
time travel), the chDB hot store (a ClickHouse server is backed up by its own BACKUP), and the
Dagster instance of `dagster_home`.
"""

from pathlib import Path

import dagster as dg

from coin_platform.backup.archive import create_backup
from coin_platform.backup.parts import ChDBPart, DuckDBFilePart, Part, dagster_part
from coin_platform.defs.resources import (
    CLICKHOUSE_POOL,
    ClickHouseResource,
    DuckDBWarehouseResource,
    ObjectStoreResource,
    TradingDesk,
    WarehouseResource,
)
from coin_platform.settings import Settings
from coin_platform.trading.store import TradingStore

BACKUP_JOB = "backup"


def backup_parts(
    trading_store: TradingDesk, clickhouse: ClickHouseResource, warehouse: WarehouseResource, dagster_home: Path
) -> tuple[list[Part], dict[str, str]]:
    """The deployment's stores as backup parts, and the stores left out with the reason (for the manifest)."""
    store = TradingStore(trading_store.store_path)
    parts: list[Part] = [DuckDBFilePart("trading_store", store.path, store.lock_path, store.lock_timeout_s)]
    left_out = {}
    if isinstance(warehouse, DuckDBWarehouseResource):
        duckdb_file = warehouse.get_warehouse()
        parts.append(DuckDBFilePart("warehouse", duckdb_file.path, duckdb_file.lock_path, duckdb_file.lock_timeout_s))
    else:
        left_out["warehouse"] = "not a DuckDB file (Snowflake keeps its own Time Travel)"
    if clickhouse.mode == "chdb":
        parts.append(ChDBPart(clickhouse.get_config()))
    else:
        left_out["hot_store"] = "a ClickHouse server: back it up with its own BACKUP, or repair the days from the store"
    parts.append(dagster_part(dagster_home))
    return parts, left_out


def build_backup_job(settings: Settings) -> tuple[dg.JobDefinition, dg.ScheduleDefinition]:
    retention_days = settings.config.backup.retention_days

    @dg.op(
        name="backup_state",
        pool=CLICKHOUSE_POOL,
        description="Copies the trading store, the warehouse, the hot store and this instance's storage into "
        f"the object store under backups/{{UTC time}}/, then deletes backups older than {retention_days} days.",
    )
    def backup_state(
        context: dg.OpExecutionContext,
        trading_store: dg.ResourceParam[TradingDesk],
        object_store: ObjectStoreResource,
        clickhouse: ClickHouseResource,
        warehouse: WarehouseResource,
    ) -> dg.Output[str]:
        parts, left_out = backup_parts(trading_store, clickhouse, warehouse, Path(context.instance.root_directory))
        result = create_backup(object_store.get_store(), parts, retention_days=retention_days, left_out=left_out)
        manifest = result.manifest
        context.log.info(f"backup {result.backup_id}: {result.bytes} bytes in {result.seconds:.1f} s")
        return dg.Output(
            result.backup_id,
            metadata={
                "backup_id": result.backup_id,
                "bytes": result.bytes,
                "seconds": round(result.seconds, 2),
                "included": sorted(manifest["included"]),
                "excluded": manifest["excluded"],
                "deleted": result.deleted,
            },
        )

    @dg.job(
        name=BACKUP_JOB,
        description="The platform's state into the object store (coin backup does the same by hand).",
    )
    def backup_job() -> None:
        backup_state()

    schedule = dg.ScheduleDefinition(
        name="backup_schedule",
        job=backup_job,
        cron_schedule=settings.config.backup.schedule,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Backs up the platform's state (config.yaml backup.schedule); keeps {retention_days} days.",
    )
    return backup_job, schedule
