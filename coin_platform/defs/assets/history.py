"""The history archive: history_{interval}, one object per year × symbol, compacted from hourly OHLCV.

The current year is compacted every day shortly after midnight UTC (schedule);
a past year is rebuilt when any of its days is rematerialized (automation
condition), once no run for its inputs is still in progress.
"""

import datetime as dt

import dagster as dg

from coin_platform.defs.partitions import DATE, SYMBOL, YEAR
from coin_platform.defs.resources import ObjectStoreResource
from coin_platform.pipeline.compaction import Compaction, compact_year, compare_with_hourly
from coin_platform.settings import Settings

HISTORY_GROUP = "history"
# A past year's archive follows repairs of its days; the current year follows the schedule.
REBUILD_PAST_YEAR_ON_REPAIR = (
    dg.AutomationCondition.any_deps_updated().since_last_handled()
    & ~dg.AutomationCondition.in_latest_time_window()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
)


def history_partitions(settings: Settings) -> dg.MultiPartitionsDefinition:
    """UTC years from the history start up to the current one × configured symbols."""
    return dg.MultiPartitionsDefinition(
        {
            YEAR: dg.TimeWindowPartitionsDefinition(
                cron_schedule="0 0 1 1 *",
                start=str(settings.config.history_start.year),
                fmt="%Y",
                timezone="UTC",
                end_offset=1,
            ),
            SYMBOL: dg.StaticPartitionsDefinition(list(settings.config.symbols)),
        }
    )


def days_into_years() -> dg.MultiPartitionMapping:
    """Each year partition depends on its days' partitions of the same symbol."""
    return dg.MultiPartitionMapping(
        {
            DATE: dg.DimensionPartitionMapping(
                YEAR, dg.TimeWindowPartitionMapping(allow_nonexistent_upstream_partitions=True)
            ),
            SYMBOL: dg.DimensionPartitionMapping(SYMBOL, dg.IdentityPartitionMapping()),
        }
    )


def split_year_keys(
    partitions_def: dg.MultiPartitionsDefinition, keys: list[str]
) -> list[tuple[int, str]]:
    pairs = []
    for key in keys:
        by_dimension = partitions_def.get_partition_key_from_str(key).keys_by_dimension
        pairs.append((int(by_dimension[YEAR]), by_dimension[SYMBOL]))
    return sorted(pairs)


def last_closed_day() -> dt.date:
    return dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)


def build_history_asset(
    interval: str,
    ohlcv_asset: dg.AssetsDefinition,
    partitions_def: dg.MultiPartitionsDefinition,
) -> tuple[dg.AssetsDefinition, dg.AssetChecksDefinition]:
    """history_{interval} and its check that the archive holds exactly its inputs' rows."""

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

    @dg.asset_check(
        asset=history,
        name="equals_hourly_inputs",
        partitions_def=partitions_def,
        description="The archive holds exactly the rows of the hourly objects of the days it covers.",
    )
    def equals_hourly_inputs(
        context: dg.AssetCheckExecutionContext, object_store: ObjectStoreResource
    ) -> dg.AssetCheckResult:
        store = object_store.get_store()
        differing = {}
        compared = 0
        for year, symbol in split_year_keys(partitions_def, list(context.partition_keys)):
            if year > last_closed_day().year:
                continue
            comparison = compare_with_hourly(store, interval, symbol, year)
            compared += 1
            if not comparison.identical:
                differing[f"{symbol}|{year}"] = {
                    "archived_rows": comparison.archived,
                    "hourly_rows": comparison.expected,
                    "only_in_archive": comparison.only_in_archive,
                    "only_in_hourly": comparison.only_in_hourly,
                }
        return dg.AssetCheckResult(
            passed=not differing,
            description=(
                f"{compared} archive(s) equal their hourly inputs"
                if not differing
                else f"{len(differing)} of {compared} archive(s) differ from their hourly inputs"
            ),
            metadata={"archives_compared": compared, "differing": dg.MetadataValue.json(differing)},
        )

    return history, equals_hourly_inputs
