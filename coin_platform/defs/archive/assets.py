"""The history archive: history_{interval}, one object per year × symbol, from Binance's public kline
archive where it has the days and from the hourly OHLCV objects for the rest (pipeline.compaction).

The current year is compacted every day shortly after midnight UTC (schedules.py);
a past year is rebuilt when any of its days is rematerialized (automation
condition), once no run for its inputs is still in progress. Its check: checks.py.
"""

import datetime as dt
import time

import dagster as dg

from coin_platform.core.progress import backfill_status
from coin_platform.defs.automation import REBUILD_PAST_YEAR_ON_REPAIR
from coin_platform.defs.partitions import days_into_years, split_year_keys, year_symbol_key
from coin_platform.defs.resources import ObjectStoreResource, PublicArchiveResource
from coin_platform.market.public_archive import ArchiveFile
from coin_platform.pipeline.compaction import Compaction, compact_year

HISTORY_GROUP = "history"
# Year × symbol partitions per backfill run. A backfill daemon tick submits all of a backfill's runs and pays
# about 0.4-0.7 s for each, on top of what every partition costs (bench/universe.py, 300 symbols × 11 years:
# 22 runs of up to 200 took a 9.6 s tick on SQLite and 12.1 s on PostgreSQL, 11 runs of 300 took 7.7 s on
# both); a year of 1m candles takes ~2.5 s, so a run is up to ~12 minutes, and a rerun skips the years built.
HISTORY_PARTITIONS_PER_RUN = 300


def last_closed_day() -> dt.date:
    return dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)


def build_history_asset(
    interval: str,
    ohlcv_asset: dg.AssetsDefinition,
    partitions_def: dg.MultiPartitionsDefinition,
    drop_zero_volume: bool,
) -> dg.AssetsDefinition:
    """history_{interval}: one archive per year × symbol of the interval's closed days."""

    @dg.asset(
        name=f"history_{interval}",
        group_name=HISTORY_GROUP,
        partitions_def=partitions_def,
        deps=[dg.AssetDep(ohlcv_asset, partition_mapping=days_into_years())],
        backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=HISTORY_PARTITIONS_PER_RUN),
        automation_condition=REBUILD_PAST_YEAR_ON_REPAIR,
        kinds={"parquet", "s3"},
        description=(
            f"{interval} candles of one symbol and UTC year in one object, "
            f"history/{{SYMBOL}}/{interval.upper()}/{{year}}.parquet (coin_hts layout and columns), "
            "sorted, zstd, week-sized row groups; covers the closed days up to the "
            "`compacted_through` day in its metadata, with a fingerprint of each day's rows so "
            "readers take a day written again since from its hourly objects. Days Binance's public "
            "archive has published come from its checksum-verified files (no request weight); the "
            "others from the hourly objects."
        ),
    )
    def history(
        context: dg.AssetExecutionContext, object_store: ObjectStoreResource, public_archive: PublicArchiveResource
    ) -> dg.MaterializeResult:
        store = object_store.get_store()
        client = public_archive.get_client()
        through = last_closed_day()
        built: list[Compaction] = []

        def progress(file: ArchiveFile, how: str) -> None:
            context.log.debug(f"{file.name}: {how}")

        pairs = split_year_keys(partitions_def, list(context.partition_keys))
        run_started = time.monotonic()
        for done_count, (year, symbol) in enumerate(pairs, start=1):
            if year > through.year:
                context.log.info(f"{symbol} {year}: no closed day yet, nothing to compact")
                continue
            started = time.monotonic()
            built.append(
                compact_year(
                    store,
                    interval,
                    symbol,
                    year,
                    through=through,
                    public_archive=client,
                    drop_zero_volume=drop_zero_volume,
                    progress=progress,
                )
            )
            done = built[-1]
            status = backfill_status(done_count, len(pairs), sum(c.rows for c in built), time.monotonic() - run_started)
            context.log.info(
                f"{symbol} {year}: {done.rows} rows -> {done.key} in {time.monotonic() - started:.1f} s "
                f"({done.files_downloaded} archive files downloaded, {done.files_reused} reused, "
                f"{done.days_from_hourly} days from hourly objects, {done.missing_candles} candles missing); "
                f"run: {status}"
            )
            # Seen on the partition's page as soon as it is built; the run's materialization comes at its end.
            context.log_event(
                dg.AssetObservation(
                    asset_key=context.asset_key,
                    partition=year_symbol_key(year, symbol),
                    metadata={
                        "dagster/row_count": done.rows,
                        "archive_files_downloaded": done.files_downloaded,
                        "archive_files_reused": done.files_reused,
                        "days_from_hourly": done.days_from_hourly,
                        "missing_candles": done.missing_candles,
                        "run_progress": status,
                    },
                )
            )
        starts = [c.first_timestamp for c in built if c.first_timestamp]
        ends = [c.last_timestamp for c in built if c.last_timestamp]
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": sum(c.rows for c in built),
                "archives": dg.MetadataValue.json(
                    [
                        {
                            "key": c.key,
                            "rows": c.rows,
                            "compacted_through": c.compacted_through.isoformat(),
                            "hourly_objects_read": c.objects_read,
                            "bytes": c.bytes_written,
                        }
                        for c in built
                    ]
                ),
                "hourly_objects_read": sum(c.objects_read for c in built),
                "archive_files_downloaded": sum(c.files_downloaded for c in built),
                "archive_files_reused": sum(c.files_reused for c in built),
                "archive_bytes_downloaded": sum(c.bytes_downloaded for c in built),
                "archive_files_unpublished": dg.MetadataValue.json(sorted(n for c in built for n in c.unpublished)),
                "days_from_hourly": sum(c.days_from_hourly for c in built),
                "missing_candles": sum(c.missing_candles for c in built),
                "quarantined_candles": sum(c.quarantined for c in built),
                "bytes_written": sum(c.bytes_written for c in built),
                "first_timestamp": min(starts).isoformat() if starts else "none",
                "last_timestamp": max(ends).isoformat() if ends else "none",
            }
        )

    return history
