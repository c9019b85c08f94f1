"""Checks of the hot store: each `hot_ohlcv_{interval}` partition inside the retention equals the
cleaned ohlcv objects, and a 15m/1h one equals the rollup of the hot 1m candles."""

import contextlib
import datetime as dt
from collections.abc import Iterator

import dagster as dg
import polars as pl

from coin_platform.defs.hot_store.assets import partition_label
from coin_platform.defs.partitions import hot_window_start, past_retention, split_partition_keys
from coin_platform.defs.resources import CLICKHOUSE_POOL, ClickHouseResource, ObjectStoreResource
from coin_platform.settings import Settings
from coin_platform.storage.clickhouse import ROLLUP_INTERVALS, compare_rollup, compare_with_source
from coin_platform.storage.layout import day_start
from coin_platform.storage.ohlcv import read_ohlcv_day

ROLLUP_CHECK = "matches_1m_rollup"
SOURCE_CHECK = "equals_ohlcv_objects"


def build_hot_checks(
    interval: str,
    hot_ohlcv: dg.AssetsDefinition,
    partitions_def: dg.MultiPartitionsDefinition,
    settings: Settings,
) -> dg.AssetChecksDefinition:
    """The checks of `hot_ohlcv_{interval}`: equal to the ohlcv objects, and for 15m/1h to the 1m rollup."""
    retention_days = settings.config.retention_days

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

    @dg.multi_asset_check(specs=specs, name=f"hot_ohlcv_{interval}_checks", pool=CLICKHOUSE_POOL)
    def hot_checks(
        context: dg.AssetCheckExecutionContext,
        object_store: ObjectStoreResource,
        clickhouse: ClickHouseResource,
    ) -> Iterator[dg.AssetCheckResult]:
        days_by_symbol = split_partition_keys(partitions_def, list(context.partition_keys))
        now = dt.datetime.now(dt.UTC)
        cutoff = hot_window_start(now, retention_days)
        store = object_store.get_store()
        inside = [
            (symbol, day)
            for symbol, days in days_by_symbol.items()
            for day in days
            if not past_retention(day, now, retention_days)
        ]
        skipped = [partition_label(d, s) for s, days in days_by_symbol.items() for d in days if (s, d) not in inside]
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
                    source_failed[partition_label(day, symbol)] = source.summary()
                if interval in ROLLUP_INTERVALS:
                    rollup = hot_store.read_rollup(interval, symbol, start, end)
                    result = compare_rollup(hot, rollup, interval)
                    rollup_compared += result.compared
                    if not result.passed:
                        rollup_failed[partition_label(day, symbol)] = result.differing
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

    return hot_checks
