"""`features_{interval}` assets: indicator features per candle, partition-aligned with `ohlcv_{interval}`.

Each run loads, per symbol, its days plus `LOOKBACK_CANDLES` of history before
them and computes the features once (coin_platform.features), so a partition's
values equal a full-history computation. Objects:
`features/{interval}/{symbol}/{yyyy-MM-dd_HH}.parquet`; days inside the hot-store
retention also go to ClickHouse (`features_{interval}`), where the live path
reads the latest row per symbol in one query.

Each day depends on its own and the look-back days of `ohlcv_{interval}`, so
re-ingesting an earlier day makes the later feature days that read it stale;
the repair automation rebuilds those that exist once nothing upstream runs.
"""

import datetime as dt

import dagster as dg
import polars as pl

from coin_platform.defs.automation import REBUILD_AFTER_INPUT_REPAIR
from coin_platform.defs.domain import CANDLE_TO_CANDIDATE_OP_TAGS
from coin_platform.defs.partitions import market_backfill_policy, past_retention, split_partition_keys, trailing_days
from coin_platform.defs.resources import CLICKHOUSE_POOL, ClickHouseResource, ObjectStoreResource
from coin_platform.features import FEATURE_COLUMNS, LOOKBACK_CANDLES, lookback_days, zone_window
from coin_platform.ops.logs import FEATURES_COMPUTED, log_event
from coin_platform.pipeline.features import build_feature_days
from coin_platform.settings import Settings

FEATURES_GROUP = "features"
PREVIEW_ROWS = 5


def build_feature_assets(
    interval: str,
    ohlcv_asset: dg.AssetsDefinition,
    partitions_def: dg.MultiPartitionsDefinition,
    settings: Settings,
) -> dg.AssetsDefinition:
    """The `features_{interval}` asset (date × symbol, same partitions as `ohlcv_{interval}`)."""
    history_start = settings.config.history_start
    retention_days = settings.config.retention_days

    @dg.asset(
        name=f"features_{interval}",
        group_name=FEATURES_GROUP,
        partitions_def=partitions_def,
        backfill_policy=market_backfill_policy(settings),
        deps=[dg.AssetDep(ohlcv_asset, partition_mapping=trailing_days(lookback_days(interval)))],
        automation_condition=REBUILD_AFTER_INPUT_REPAIR,
        pool=CLICKHOUSE_POOL,
        op_tags=CANDLE_TO_CANDIDATE_OP_TAGS,
        kinds={"polars", "parquet", "s3", "clickhouse"},
        description=(
            f"Indicator features of every closed {interval} candle ({', '.join(FEATURE_COLUMNS[1:])}; "
            f"volume zones over {zone_window(interval)} candles), computed with {LOOKBACK_CANDLES:,} candles "
            f"of look-back so every value equals a full-history computation. One object per UTC hour at "
            f"features/{interval}/{{symbol}}/{{yyyy-MM-dd_HH}}.parquet; days inside the {retention_days}-day "
            f"retention also in ClickHouse features_{interval}. Existing days are rebuilt automatically "
            f"when any of the {lookback_days(interval)} days before them is re-ingested."
        ),
    )
    def features(
        context: dg.AssetExecutionContext, object_store: ObjectStoreResource, clickhouse: ClickHouseResource
    ) -> dg.MaterializeResult:
        days_by_symbol = split_partition_keys(partitions_def, list(context.partition_keys))
        store = object_store.get_store()
        builds = [
            build_feature_days(store, interval, symbol, days, history_start) for symbol, days in days_by_symbol.items()
        ]
        for build in builds:
            log_event(
                context.log,
                FEATURES_COMPUTED,
                f"{build.symbol} {interval}: {build.rows} feature rows for {len(build.days)} day(s) "
                f"from {build.history_rows} candles of history ({build.warmup_rows} before the first day)",
                symbol=build.symbol,
                interval=interval,
                days=build.days,
                open_time=build.last_open,
                rows=build.rows,
            )
        now = dt.datetime.now(dt.UTC)
        hot_days = [(b, day) for b in builds for day in b.days if not past_retention(day, now, retention_days)]
        hot_rows = 0
        if hot_days:  # S3 work is done; hold the chDB lock only for this
            with clickhouse.open() as hot_store:
                for build, day in hot_days:
                    rows = build.frame.filter(pl.col("open_time").dt.date() == day)
                    hot_rows += hot_store.replace_features_day(interval, build.symbol, day, rows)
        firsts = [b.first_open for b in builds if b.first_open is not None]
        lasts = [b.last_open for b in builds if b.last_open is not None]
        metadata: dict[str, object] = {
            "dagster/row_count": sum(b.rows for b in builds),
            "partitions": sum(len(b.days) for b in builds),
            "days": dg.MetadataValue.json({b.symbol: [d.isoformat() for d in b.days] for b in builds}),
            "warmup_rows": sum(b.warmup_rows for b in builds),
            "history_rows": sum(b.history_rows for b in builds),
            "history_start": history_start.isoformat(),
            "files_written": sum(b.files_written for b in builds),
            "files_deleted": sum(b.files_deleted for b in builds),
            "first_open_time": min(firsts).isoformat() if firsts else "",
            "last_open_time": max(lasts).isoformat() if lasts else "",
            "zone_window": zone_window(interval),
            "clickhouse_rows": hot_rows,
            "clickhouse_days": len(hot_days),
        }
        with_rows = [b for b in builds if b.rows]
        if with_rows:
            tail = with_rows[-1].frame.tail(PREVIEW_ROWS)
            metadata["preview"] = dg.MetadataValue.md(
                f"{with_rows[-1].symbol}, last {tail.height} rows\n\n" + tail.to_pandas().to_markdown(index=False)
            )
        return dg.MaterializeResult(metadata=metadata)

    return features
