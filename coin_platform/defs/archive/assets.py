"""The history archive: history_{interval}, one object per year × symbol, compacted from hourly OHLCV.

The current year is compacted every day shortly after midnight UTC (schedules.py);
a past year is rebuilt when any of its days is rematerialized (automation
condition), once no run for its inputs is still in progress. Its check: checks.py.
"""

import datetime as dt

import dagster as dg

from coin_platform.defs.automation import REBUILD_PAST_YEAR_ON_REPAIR
from coin_platform.defs.partitions import days_into_years, split_year_keys
from coin_platform.defs.resources import ObjectStoreResource
from coin_platform.pipeline.compaction import Compaction, compact_year

HISTORY_GROUP = "history"


def last_closed_day() -> dt.date:
    return dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)


def build_history_asset(
    interval: str,
    ohlcv_asset: dg.AssetsDefinition,
    partitions_def: dg.MultiPartitionsDefinition,
) -> dg.AssetsDefinition:
    """history_{interval}: one archive per year × symbol of the interval's closed days."""

    @dg.asset(
        name=f"history_{interval}",
        group_name=HISTORY_GROUP,
        partitions_def=partitions_def,
        deps=[dg.AssetDep(ohlcv_asset, partition_mapping=days_into_years())],
        backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=10),
        automation_condition=REBUILD_PAST_YEAR_ON_REPAIR,
        kinds={"parquet", "s3"},
        description=(
            f"{interval} candles of one symbol and UTC year in one object, "
            f"history/{{SYMBOL}}/{interval.upper()}/{{year}}.parquet (coin_hts layout and columns), "
            "sorted, zstd, week-sized row groups; covers the closed days up to the "
            "`compacted_through` day in its metadata, with a fingerprint of each day's rows so "
            "readers take a day written again since from its hourly objects."
        ),
    )
    def history(
        context: dg.AssetExecutionContext, object_store: ObjectStoreResource
    ) -> dg.MaterializeResult:
        store = object_store.get_store()
        through = last_closed_day()
        built: list[Compaction] = []
        for year, symbol in split_year_keys(partitions_def, list(context.partition_keys)):
            if year > through.year:
                context.log.info(f"{symbol} {year}: no closed day yet, nothing to compact")
                continue
            built.append(compact_year(store, interval, symbol, year, through=through))
            context.log.info(f"{symbol} {year}: {built[-1].rows} rows -> {built[-1].key}")
        starts = [c.first_timestamp for c in built if c.first_timestamp]
        ends = [c.last_timestamp for c in built if c.last_timestamp]
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": sum(c.rows for c in built),
                "archives": dg.MetadataValue.json(
                    [
                        {"key": c.key, "rows": c.rows, "compacted_through": c.compacted_through.isoformat(),
                         "hourly_objects_read": c.objects_read, "bytes": c.bytes_written}
                        for c in built
                    ]
                ),
                "hourly_objects_read": sum(c.objects_read for c in built),
                "bytes_written": sum(c.bytes_written for c in built),
                "first_timestamp": min(starts).isoformat() if starts else "none",
                "last_timestamp": max(ends).isoformat() if ends else "none",
            }
        )

    return history
