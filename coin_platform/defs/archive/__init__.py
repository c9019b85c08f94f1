"""The archive domain: `history_{interval}` (the yearly archives), their check, the compact_history
job and its daily schedule."""

from collections.abc import Mapping

import dagster as dg

from coin_platform.defs.archive.assets import build_history_asset
from coin_platform.defs.archive.checks import build_history_check
from coin_platform.defs.archive.jobs import build_compact_job
from coin_platform.defs.archive.schedules import build_history_schedule
from coin_platform.defs.domain import Domain
from coin_platform.defs.market.assets import MarketAssets
from coin_platform.settings import Settings


def build_defs(
    settings: Settings, years_def: dg.MultiPartitionsDefinition, market: Mapping[str, MarketAssets]
) -> Domain[dg.AssetsDefinition]:
    drop_zero_volume = settings.config.cleaning.drop_zero_volume
    assets = {
        interval: build_history_asset(interval, step.ohlcv, years_def, drop_zero_volume)
        for interval, step in market.items()
    }
    checks = [build_history_check(interval, asset, years_def) for interval, asset in assets.items()]
    job = build_compact_job(list(assets.values()))
    return Domain(
        dg.Definitions(
            assets=list(assets.values()),
            asset_checks=checks,
            jobs=[job],
            schedules=[build_history_schedule(job, settings.config.symbols)],
        ),
        assets,
    )
