"""The ClickHouse hot store: `hot_ohlcv_{interval}` assets and the 1m rollup check.

Assets open a client inside their body through `ClickHouseResource.open()` and
close it before returning: chDB allows one process per path (see
`coin_platform.storage.clickhouse`). Every ClickHouse asset and check runs in
the `clickhouse` pool (limit 1 locally).
"""

import datetime as dt
from collections.abc import Iterator

import dagster as dg
import polars as pl

from coin_platform.defs.partitions import split_partition_keys
from coin_platform.defs.resources import ClickHouseResource, ObjectStoreResource
from coin_platform.market.ingest import read_ohlcv_day
from coin_platform.settings import Settings
from coin_platform.storage.clickhouse import (
    ROLLUP_INTERVALS,
    compare_rollup,
    hot_counts,
    migrate,
    read_hot_ohlcv,
    read_rollup,
    replace_ohlcv_day,
)
from coin_platform.storage.layout import day_start

HOT_GROUP = "hot_store"
POOL = "clickhouse"
ROLLUP_CHECK = "matches_1m_rollup"


def past_retention(day: dt.date, now: dt.datetime, retention_days: int) -> bool:
    """The whole day is past the retention window (its TTL would already delete every row)."""
    return day_start(day) + dt.timedelta(days=1) <= now - dt.timedelta(days=retention_days)


def _label(day: dt.date, symbol: str) -> str:
    return f"{day.isoformat()}|{symbol}"


def build_hot_assets(
    interval: str,
    ohlcv_asset: dg.AssetsDefinition,
    partitions_def: dg.MultiPartitionsDefinition,
    settings: Settings,
) -> tuple[dg.AssetsDefinition, dg.AssetChecksDefinition | None]:
    """`hot_ohlcv_{interval}` and, for 15m/1h, its check against the 1m rollup."""
    retention_days = settings.config.retention_days

    @dg.asset(
        name=f"hot_ohlcv_{interval}",
        group_name=HOT_GROUP,
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.multi_run(
            max_partitions_per_run=settings.config.ingestion.max_partitions_per_run
        ),
        deps=[ohlcv_asset],
        pool=POOL,
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
        cutoff = now - dt.timedelta(days=retention_days)
        skipped: list[str] = []
        frames: dict[tuple[str, dt.date], pl.DataFrame] = {}
        store = object_store.get_store()
        for symbol, days in days_by_symbol.items():
            for day in days:
                if past_retention(day, now, retention_days):
                    skipped.append(_label(day, symbol))
                else:
                    frames[(symbol, day)] = read_ohlcv_day(store, interval, symbol, day)
        # Rows the TTL already expires are left out, so FINAL counts can equal what was inserted.
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
                f"window skipped (nothing inserted): {', '.join(skipped[:10])}"
                + (" …" if len(skipped) > 10 else "")
            )
            context.log.info(note)
            metadata["note"] = note
        if not frames:
            return dg.MaterializeResult(metadata={**metadata, "dagster/row_count": 0})

        with clickhouse.open() as client:
            applied = migrate(client, retention_days, clickhouse.database)
            inserted = {
                key: replace_ohlcv_day(client, interval, key[0], key[1], frame, database=clickhouse.database)
                for key, frame in frames.items()
            }
            counts = hot_counts(
                client,
                interval,
                sorted({s for s, _ in frames}),
                sorted({d for _, d in frames}),
                database=clickhouse.database,
            )
        mismatched = {
            _label(day, symbol): {"inserted": n, "final_count": counts[(symbol, day)]}
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

    if interval not in ROLLUP_INTERVALS:
        return hot_ohlcv, None

    spec = dg.AssetCheckSpec(
        ROLLUP_CHECK,
        asset=hot_ohlcv.key,
        partitions_def=partitions_def,
        description=(
            f"Each hot {interval} candle equals the rollup of the hot 1m candles (materialized "
            f"view ohlcv_{interval}_from_1m) wherever all its 1m candles are stored: prices and "
            f"trades exactly, volumes to 1e-9 relative."
        ),
    )

    @dg.multi_asset_check(specs=[spec], name=f"hot_ohlcv_{interval}_checks", pool=POOL)
    def rollup_check(
        context: dg.AssetCheckExecutionContext, clickhouse: ClickHouseResource
    ) -> Iterator[dg.AssetCheckResult]:
        days_by_symbol = split_partition_keys(partitions_def, list(context.partition_keys))
        now = dt.datetime.now(dt.UTC)
        compared, failed, skipped = 0, {}, []
        with clickhouse.open() as client:
            migrate(client, retention_days, clickhouse.database)
            for symbol, days in days_by_symbol.items():
                for day in days:
                    if past_retention(day, now, retention_days):
                        skipped.append(_label(day, symbol))
                        continue
                    start = day_start(day)
                    end = start + dt.timedelta(days=1)
                    coarse = read_hot_ohlcv(client, interval, symbol, start, end, database=clickhouse.database)
                    rollup = read_rollup(client, interval, symbol, start, end, database=clickhouse.database)
                    result = compare_rollup(coarse, rollup, interval)
                    compared += result.compared
                    if not result.passed:
                        failed[_label(day, symbol)] = result.differing
        yield dg.AssetCheckResult(
            check_name=ROLLUP_CHECK,
            asset_key=hot_ohlcv.key,
            passed=not failed,
            description=(
                f"{len(failed)} partition(s) differ from the 1m rollup"
                if failed
                else f"{compared} candles equal the 1m rollup"
                if compared
                else "nothing to compare: no candle has all its 1m candles in the hot store"
            ),
            metadata={
                "candles_compared": compared,
                "failed_partitions": dg.MetadataValue.json(dict(list(failed.items())[:20])),
                "skipped_partitions": dg.MetadataValue.json(skipped[:100]),
            },
        )

    return hot_ohlcv, rollup_check
