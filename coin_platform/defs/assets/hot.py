"""The ClickHouse hot store: `hot_ohlcv_{interval}` assets and their checks.

Assets open a client inside their body through `ClickHouseResource.open()` and
close it before returning: chDB allows one process per path (see
`coin_platform.storage.clickhouse`). Every ClickHouse asset and check runs in
the `clickhouse` pool (limit 1 locally).
"""

import contextlib
import datetime as dt
from collections.abc import Iterator

import dagster as dg
import polars as pl

from coin_platform.defs.automation import REBUILD_AFTER_INPUT_REPAIR
from coin_platform.defs.partitions import split_partition_keys
from coin_platform.defs.resources import ClickHouseResource, ObjectStoreResource
from coin_platform.settings import Settings
from coin_platform.storage.clickhouse import ROLLUP_INTERVALS, compare_rollup, compare_with_source
from coin_platform.storage.layout import day_start
from coin_platform.storage.ohlcv import read_ohlcv_day

HOT_GROUP = "hot_store"
POOL = "clickhouse"
ROLLUP_CHECK = "matches_1m_rollup"
SOURCE_CHECK = "equals_ohlcv_objects"


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
) -> tuple[dg.AssetsDefinition, dg.AssetChecksDefinition]:
    """`hot_ohlcv_{interval}` and its checks: equal to the ohlcv objects, and for 15m/1h to the 1m rollup."""
    retention_days = settings.config.retention_days

    @dg.asset(
        name=f"hot_ohlcv_{interval}",
        group_name=HOT_GROUP,
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.multi_run(
            max_partitions_per_run=settings.config.ingestion.max_partitions_per_run
        ),
        deps=[ohlcv_asset],
        # Only days the hot store still keeps follow a repaired ohlcv day.
        automation_condition=REBUILD_AFTER_INPUT_REPAIR
        & dg.AutomationCondition.in_latest_time_window(dt.timedelta(days=retention_days + 1)),
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

        with clickhouse.open() as hot_store:
            applied = hot_store.migrations_applied
            inserted = {
                key: hot_store.replace_ohlcv_day(interval, key[0], key[1], frame) for key, frame in frames.items()
            }
            counts = hot_store.hot_counts(interval, sorted({s for s, _ in frames}), sorted({d for _, d in frames}))
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

    source_spec = dg.AssetCheckSpec(
        SOURCE_CHECK,
        asset=hot_ohlcv.key,
        partitions_def=partitions_def,
        description=(
            f"The hot {interval} candles of each partition inside the retention equal the cleaned "
            f"ohlcv_{interval} objects: the same open times, every column exactly."
        ),
    )
    specs = [source_spec]
    if interval in ROLLUP_INTERVALS:
        specs.append(
            dg.AssetCheckSpec(
                ROLLUP_CHECK,
                asset=hot_ohlcv.key,
                partitions_def=partitions_def,
                description=(
                    f"Each hot {interval} candle equals the rollup of the hot 1m candles (materialized "
                    f"view ohlcv_{interval}_from_1m) wherever all its 1m candles are stored: prices and "
                    f"trades exactly, volumes to 1e-9 relative."
                ),
            )
        )

    @dg.multi_asset_check(specs=specs, name=f"hot_ohlcv_{interval}_checks", pool=POOL)
    def hot_checks(
        context: dg.AssetCheckExecutionContext,
        object_store: ObjectStoreResource,
        clickhouse: ClickHouseResource,
    ) -> Iterator[dg.AssetCheckResult]:
        days_by_symbol = split_partition_keys(partitions_def, list(context.partition_keys))
        now = dt.datetime.now(dt.UTC)
        cutoff = now - dt.timedelta(days=retention_days)
        store = object_store.get_store()
        inside = [
            (symbol, day)
            for symbol, days in days_by_symbol.items()
            for day in days
            if not past_retention(day, now, retention_days)
        ]
        skipped = [_label(d, s) for s, days in days_by_symbol.items() for d in days if (s, d) not in inside]
        sources = {
            (symbol, day): read_ohlcv_day(store, interval, symbol, day).filter(pl.col("open_time") > cutoff)
            for symbol, day in inside
        }
        source_compared, source_failed = 0, {}
        rollup_compared, rollup_failed = 0, {}
        with clickhouse.open() if inside else contextlib.nullcontext() as hot_store:
            for symbol, day in inside:
                start = day_start(day)
                end = start + dt.timedelta(days=1)
                hot = hot_store.read_hot_ohlcv(interval, symbol, start, end)
                source = compare_with_source(hot.filter(pl.col("open_time") > cutoff), sources[(symbol, day)])
                source_compared += source.compared
                if not source.passed:
                    source_failed[_label(day, symbol)] = source.summary()
                if interval in ROLLUP_INTERVALS:
                    rollup = hot_store.read_rollup(interval, symbol, start, end)
                    result = compare_rollup(hot, rollup, interval)
                    rollup_compared += result.compared
                    if not result.passed:
                        rollup_failed[_label(day, symbol)] = result.differing
        skipped_json = dg.MetadataValue.json(skipped[:100])
        yield dg.AssetCheckResult(
            check_name=SOURCE_CHECK,
            asset_key=hot_ohlcv.key,
            passed=not source_failed,
            description=(
                f"{len(source_failed)} partition(s) differ from the ohlcv_{interval} objects"
                if source_failed
                else f"{source_compared} candles equal the ohlcv_{interval} objects"
                if inside
                else f"nothing to compare: every partition is older than the {retention_days}-day retention"
            ),
            metadata={
                "candles_compared": source_compared,
                "failed_partitions": dg.MetadataValue.json(dict(list(source_failed.items())[:20])),
                "skipped_partitions": skipped_json,
            },
        )
        if interval not in ROLLUP_INTERVALS:
            return
        yield dg.AssetCheckResult(
            check_name=ROLLUP_CHECK,
            asset_key=hot_ohlcv.key,
            passed=not rollup_failed,
            description=(
                f"{len(rollup_failed)} partition(s) differ from the 1m rollup"
                if rollup_failed
                else f"{rollup_compared} candles equal the 1m rollup"
                if rollup_compared
                else "nothing to compare: no candle has all its 1m candles in the hot store"
            ),
            metadata={
                "candles_compared": rollup_compared,
                "failed_partitions": dg.MetadataValue.json(dict(list(rollup_failed.items())[:20])),
                "skipped_partitions": skipped_json,
            },
        )

    return hot_ohlcv, hot_checks
