"""`features_{interval}` assets: indicator features per candle, partition-aligned with `ohlcv_{interval}`.

Each run loads, per symbol, the candles from `config.history_start` through the
end of its last requested day and computes the features once over all of them
(coin_platform.features), so a partition's values equal a single full-history
computation. Objects: `features/{interval}/{symbol}/{yyyy-MM-dd_HH}.parquet`.
"""

import dagster as dg

from coin_platform.defs.partitions import split_partition_keys
from coin_platform.defs.resources import ObjectStoreResource
from coin_platform.features import FEATURE_COLUMNS, build_feature_days, zone_window
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

    @dg.asset(
        name=f"features_{interval}",
        group_name=FEATURES_GROUP,
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.multi_run(
            max_partitions_per_run=settings.config.ingestion.max_partitions_per_run
        ),
        deps=[ohlcv_asset],
        kinds={"polars", "parquet", "s3"},
        description=(
            f"Indicator features of every closed {interval} candle ({', '.join(FEATURE_COLUMNS[1:])}; "
            f"volume zones over {zone_window(interval)} candles), computed over the full history from "
            f"{history_start} so every value equals a single full-history computation. One object per "
            f"UTC hour at features/{interval}/{{symbol}}/{{yyyy-MM-dd_HH}}.parquet. Rebuild later days "
            f"after re-ingesting an earlier one."
        ),
    )
    def features(context: dg.AssetExecutionContext, object_store: ObjectStoreResource) -> dg.MaterializeResult:
        days_by_symbol = split_partition_keys(partitions_def, list(context.partition_keys))
        store = object_store.get_store()
        builds = [
            build_feature_days(store, interval, symbol, days, history_start) for symbol, days in days_by_symbol.items()
        ]
        for build in builds:
            context.log.info(
                f"{build.symbol} {interval}: {build.rows} feature rows for {len(build.days)} day(s) "
                f"from {build.history_rows} candles of history ({build.warmup_rows} before the first day)"
            )
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
        }
        with_rows = [b for b in builds if b.rows]
        if with_rows:
            tail = with_rows[-1].frame.tail(PREVIEW_ROWS)
            metadata["preview"] = dg.MetadataValue.md(
                f"{with_rows[-1].symbol}, last {tail.height} rows\n\n" + tail.to_pandas().to_markdown(index=False)
            )
        return dg.MaterializeResult(metadata=metadata)

    return features
