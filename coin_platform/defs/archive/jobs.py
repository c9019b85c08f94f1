"""compact_history: every interval's history archives, one job (the daily schedule's target)."""

from collections.abc import Sequence

import dagster as dg


def build_compact_job(history_assets: Sequence[dg.AssetsDefinition]):
    return dg.define_asset_job(
        name="compact_history",
        selection=dg.AssetSelection.assets(*history_assets),
        executor_def=dg.in_process_executor,
        description="Compact hourly OHLCV into the yearly history archives.",
    )
