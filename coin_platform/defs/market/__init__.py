"""The market domain: per interval, raw klines and cleaned OHLCV (one fetch-and-clean step) and
the OHLCV checks. Its live schedules (schedules.py) start the ingest jobs, which span several
domains and are built in coin_platform.defs.jobs."""

import dagster as dg

from coin_platform.defs.domain import Domain
from coin_platform.defs.market.assets import MarketAssets, build_market_assets
from coin_platform.defs.market.checks import build_ohlcv_checks
from coin_platform.settings import Settings


def build_defs(settings: Settings, partitions_def: dg.MultiPartitionsDefinition) -> Domain[MarketAssets]:
    intervals = settings.config.intervals
    steps = {interval: build_market_assets(interval, partitions_def, settings) for interval in intervals}
    checks = [
        build_ohlcv_checks(interval, step.ohlcv, partitions_def, compare_with_1m=interval != "1m" and "1m" in intervals)
        for interval, step in steps.items()
    ]
    return Domain(
        dg.Definitions(assets=[step.step for step in steps.values()], asset_checks=checks),
        steps,
    )
