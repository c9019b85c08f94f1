"""The ClickHouse hot store: `hot_ohlcv_{interval}` assets (their checks: checks.py).

Assets open the hot store inside their body through `ClickHouseResource.open()` and
close it before returning: chDB allows one process per path (see
`coin_platform.storage.clickhouse`). Every ClickHouse asset and check runs in
the CLICKHOUSE_POOL pool (limit 1 locally).
"""

import datetime as dt

import dagster as dg
import polars as pl

from coin_platform.defs.automation import rebuild_inside_retention
from coin_platform.defs.partitions import hot_window_start, market_backfill_policy, past_retention, split_partition_keys
from coin_platform.defs.resources import CLICKHOUSE_POOL, ClickHouseResource, ObjectStoreResource
from coin_platform.settings import Settings
from coin_platform.storage.ohlcv import read_ohlcv_day

HOT_GROUP = "hot_store"


def partition_label(day: dt.date, symbol: str) -> str:
    return f"{day.isoformat()}|{symbol}"


def build_hot_asset(
    interval: str,
    ohlcv_asset: dg.AssetsDefinition,
    partitions_def: dg.MultiPartitionsDefinition,
    settings: Settings,
) -> dg.AssetsDefinition:
    """`hot_ohlcv_{interval}`: the cleaned candles of the days inside the retention, in ClickHouse."""
    retention_days = settings.config.retention_days

    @dg.asset(
        name=f"hot_ohlcv_{interval}",
        group_name=HOT_GROUP,
        partitions_def=partitions_def,
        backfill_policy=market_backfill_policy(settings),
        deps=[ohlcv_asset],
        # Only days the hot store still keeps follow a repaired ohlcv day.
        automation_condition=rebuild_inside_retention(retention_days),
        pool=CLICKHOUSE_POOL,
        kinds={"clickhouse"},
        description=(
            f"The last {retention_days} day(s) of cleaned {interval} OHLCV in ClickHouse table "
            f"ohlcv_{interval} (ReplacingMergeTree, TTL {retention_days} day(s)). Each partition "
            f"replaces its (symbol, day) rows; partitions older than the retention are skipped."
        ),
    )
    def hot_ohlcv(
        context: dg.AssetExecutionContext,
        object_store: ObjectStoreResource,
        clickhouse: ClickHouseResource,
    ) -> dg.MaterializeResult:
        days_by_symbol = split_partition_keys(partitions_def, list(context.partition_keys))
        now = dt.datetime.now(dt.UTC)
        cutoff = hot_window_start(now, retention_days)
        skipped: list[str] = []
        frames: dict[tuple[str, dt.date], pl.DataFrame] = {}
        store = object_store.get_store()
        for symbol, days in days_by_symbol.items():
            for day in days:
                if past_retention(day, now, retention_days):
                    skipped.append(partition_label(day, symbol))
                else:
                    frames[(symbol, day)] = read_ohlcv_day(store, interval, symbol, day)
        # Rows the TTL expires now or soon are left out, so FINAL counts can equal what was inserted.
        expired_rows = sum(f.filter(pl.col("open_time") <= cutoff).height for f in frames.values())
        frames = {k: f.filter(pl.col("open_time") > cutoff) for k, f in frames.items()}
        metadata: dict[str, object] = {
            "partitions": len(frames),
            "skipped_partitions": dg.MetadataValue.json(skipped[:100]),
            "retention_days": retention_days,
            "expired_rows_left_out": expired_rows,
        }
        if skipped:
            note = (
                f"{len(skipped)} partition(s) older than the {retention_days}-day retention "
                f"window skipped (nothing inserted): {', '.join(skipped[:10])}" + (" …" if len(skipped) > 10 else "")
            )
            context.log.info(note)
            metadata["note"] = note
        if not frames:
            return dg.MaterializeResult(metadata={**metadata, "dagster/row_count": 0})

        with clickhouse.open() as hot_store:
            applied = hot_store.migrations_applied
            inserted = {
                key: hot_store.replace_ohlcv_day(interval, key[0], key[1], frame) for key, frame in frames.items()
            }
            counts = hot_store.hot_counts(interval, sorted({s for s, _ in frames}), sorted({d for _, d in frames}))
        mismatched = {
            partition_label(day, symbol): {"inserted": n, "final_count": counts[(symbol, day)]}
            for (symbol, day), n in inserted.items()
            if counts[(symbol, day)] != n
        }
        if mismatched:
            raise dg.Failure(
                f"hot ohlcv_{interval}: FINAL counts differ from the rows inserted",
                metadata={"partitions": dg.MetadataValue.json(mismatched)},
            )
        return dg.MaterializeResult(
            metadata={
                **metadata,
                "dagster/row_count": sum(inserted.values()),
                "final_rows": sum(counts[k] for k in inserted),
                "final_count_equals_source": True,
                "empty_partitions": sum(1 for n in inserted.values() if n == 0),
                "migrations_applied": dg.MetadataValue.json(applied),
                "table": f"{clickhouse.database}.ohlcv_{interval}",
            }
        )

    return hot_ohlcv
