"""`warehouse_{table}` assets: one per raw warehouse table (storage/warehouse_tables.RAW_TABLES), so a
dbt source `raw.{table}` maps to the asset key `warehouse_{table}`.

- `warehouse_ohlcv_{interval}`, `warehouse_features_{interval}`: date × symbol, identity deps on
  `ohlcv_{interval}` / `features_{interval}`; the rows come from the object store.
- `warehouse_candidates`: date × symbol, identity deps on every `candidates_{interval}`; a partition is
  the symbol's candidates of that day on all intervals, from the hot store (which keeps them without TTL).
- `warehouse_decisions` (from the hot store) and `warehouse_orders` + `warehouse_fills` (from the
  trading store): one partition per UTC day, every symbol.

Each partition is replaced in one transaction, so a rerun leaves the same rows. The warehouse is
whatever the deployment's `warehouse` resource is; these assets never ask which.
"""

import datetime as dt
from collections.abc import Mapping

import dagster as dg

from coin_platform.defs.partitions import market_backfill_policy, split_partition_keys
from coin_platform.defs.resources import (
    WAREHOUSE_POOL,
    ClickHouseResource,
    ObjectStoreResource,
    TradingDesk,
    WarehouseResource,
)
from coin_platform.defs.trading.assets import DECISIONS_ASSET, ORDERS_ASSET
from coin_platform.pipeline.warehouse import (
    PartitionLoad,
    candidate_rows,
    decision_rows,
    load_market_days,
    trading_rows,
)
from coin_platform.settings import Settings
from coin_platform.storage.warehouse_tables import CANDIDATES, DECISIONS, FILLS, ORDERS, features_table, ohlcv_table

WAREHOUSE_GROUP = "warehouse"
KINDS = {"polars", "sql"}


def warehouse_key(table: str) -> dg.AssetKey:
    """The asset that loads raw table `table` (what a dbt source of it maps to)."""
    return dg.AssetKey(f"warehouse_{table}")


def _holder(context: dg.AssetExecutionContext) -> str:
    return f"run {context.run.run_id} ({context.job_name})"


def _metadata(loads: list[PartitionLoad]) -> dict[str, object]:
    tables = sorted({load.table for load in loads})
    return {
        "dagster/row_count": sum(load.rows for load in loads),
        "table": ", ".join(f"raw.{t}" for t in tables),
        "partitions": len(loads),
        "rows_by_partition": dg.MetadataValue.json(
            {" ".join(filter(None, [load.table, load.day.isoformat(), load.symbol])): load.rows for load in loads}
        ),
    }


def build_market_load(
    dataset: str,
    interval: str,
    upstream: dg.AssetKey,
    partitions_def: dg.MultiPartitionsDefinition,
    settings: Settings,
) -> dg.AssetsDefinition:
    """`warehouse_ohlcv_{interval}` or `warehouse_features_{interval}`, partition-aligned with `upstream`."""
    table = ohlcv_table(interval) if dataset == "ohlcv" else features_table(interval)

    @dg.asset(
        key=warehouse_key(table),
        group_name=WAREHOUSE_GROUP,
        partitions_def=partitions_def,
        backfill_policy=market_backfill_policy(settings),
        deps=[upstream],
        pool=WAREHOUSE_POOL,
        kinds=KINDS,
        description=(
            f"Raw warehouse table `raw.{table}`: the stored {dataset} rows of `{upstream.to_user_string()}` "
            "for each day × symbol, with their symbol; each partition replaced in one transaction."
        ),
    )
    def load(
        context: dg.AssetExecutionContext, object_store: ObjectStoreResource, warehouse: WarehouseResource
    ) -> dg.MaterializeResult:
        store = object_store.get_store()
        target = warehouse.get_warehouse(_holder(context))
        loads = [
            load
            for symbol, days in split_partition_keys(partitions_def, list(context.partition_keys)).items()
            for load in load_market_days(target, store, dataset, interval, symbol, days)
        ]
        return dg.MaterializeResult(metadata=_metadata(loads))

    return load


def build_candidates_load(
    candidates: Mapping[str, dg.AssetsDefinition], partitions_def: dg.MultiPartitionsDefinition, settings: Settings
) -> dg.AssetsDefinition:
    """`warehouse_candidates`: each symbol's day of candidates on every configured interval."""
    intervals = list(candidates)

    @dg.asset(
        key=warehouse_key(CANDIDATES.name),
        group_name=WAREHOUSE_GROUP,
        partitions_def=partitions_def,
        backfill_policy=market_backfill_policy(settings),
        deps=[asset.key for asset in candidates.values()],
        pool=WAREHOUSE_POOL,
        kinds=KINDS,
        description=(
            f"Raw warehouse table `raw.{CANDIDATES.name}`: the candidates the hot store recorded for each "
            f"day × symbol on {', '.join(intervals)} (the hot store keeps candidates without a TTL, so "
            "any past day loads again)."
        ),
    )
    def load(
        context: dg.AssetExecutionContext, clickhouse: ClickHouseResource, warehouse: WarehouseResource
    ) -> dg.MaterializeResult:
        partitions = [
            (symbol, day)
            for symbol, days in split_partition_keys(partitions_def, list(context.partition_keys)).items()
            for day in days
        ]
        with clickhouse.open() as hot_store:  # read everything, then release the hot store before writing
            frames = {(symbol, day): candidate_rows(hot_store, intervals, symbol, day) for symbol, day in partitions}
        target = warehouse.get_warehouse(_holder(context))
        rows = target.load_partitions(
            CANDIDATES.name, [(frame, day, symbol) for (symbol, day), frame in frames.items()]
        )
        loads = [PartitionLoad(CANDIDATES.name, day, symbol, n) for (symbol, day), n in zip(frames, rows, strict=True)]
        return dg.MaterializeResult(metadata=_metadata(loads))

    return load


def _days(context: dg.AssetExecutionContext) -> list[dt.date]:
    return [dt.date.fromisoformat(key) for key in context.partition_keys]


def build_decisions_load(days: dg.DailyPartitionsDefinition) -> dg.AssetsDefinition:
    """`warehouse_decisions`: each UTC day's decisions, every symbol, from the trading store."""

    @dg.asset(
        key=warehouse_key(DECISIONS.name),
        group_name=WAREHOUSE_GROUP,
        partitions_def=days,
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=[DECISIONS_ASSET],
        pool=WAREHOUSE_POOL,
        kinds=KINDS,
        description=(
            f"Raw warehouse table `raw.{DECISIONS.name}`: the decisions trade_job recorded in the trading store, "
            "one partition per UTC day of the candle's close, every symbol."
        ),
    )
    def load(
        context: dg.AssetExecutionContext, trading_store: dg.ResourceParam[TradingDesk], warehouse: WarehouseResource
    ) -> dg.MaterializeResult:
        store = trading_store.get_store()
        frames = {day: decision_rows(store, day) for day in _days(context)}
        target = warehouse.get_warehouse(_holder(context))
        rows = target.load_partitions(DECISIONS.name, [(frame, day, None) for day, frame in frames.items()])
        loads = [PartitionLoad(DECISIONS.name, day, None, n) for day, n in zip(frames, rows, strict=True)]
        return dg.MaterializeResult(metadata=_metadata(loads))

    return load


def build_trading_load(days: dg.DailyPartitionsDefinition) -> dg.AssetsDefinition:
    """`warehouse_orders` and `warehouse_fills`: each UTC day's orders and fills from the trading store."""

    @dg.multi_asset(
        name="warehouse_orders_and_fills",
        specs=[
            dg.AssetSpec(
                warehouse_key(table.name),
                group_name=WAREHOUSE_GROUP,
                deps=[ORDERS_ASSET],
                kinds=KINDS,
                description=(
                    f"Raw warehouse table `raw.{table.name}`: the trading store's {table.name} of each UTC day "
                    f"(by {table.day_column}), every symbol."
                ),
            )
            for table in (ORDERS, FILLS)
        ],
        partitions_def=days,
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=WAREHOUSE_POOL,
    )
    def load(
        context: dg.AssetExecutionContext, trading_store: dg.ResourceParam[TradingDesk], warehouse: WarehouseResource
    ):
        store = trading_store.get_store()
        frames = {day: trading_rows(store, day) for day in _days(context)}
        target = warehouse.get_warehouse(_holder(context))
        for index, table in enumerate((ORDERS, FILLS)):
            rows = target.load_partitions(table.name, [(pair[index], day, None) for day, pair in frames.items()])
            loads = [PartitionLoad(table.name, day, None, n) for day, n in zip(frames, rows, strict=True)]
            yield dg.MaterializeResult(asset_key=warehouse_key(table.name), metadata=_metadata(loads))

    return load
