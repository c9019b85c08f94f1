"""The market domain: per interval, raw klines and cleaned OHLCV (one fetch-and-clean step) and
the OHLCV checks; the funding rates with their checks, their job (ingest_funding) and schedule; with
`symbols: all`, the universe snapshot (universe.py) with its daily job.
Its live schedules (schedules.py) start the ingest jobs, which span several domains and are built
in coin_platform.defs.jobs."""

import dagster as dg

from coin_platform.defs.domain import Domain
from coin_platform.defs.market.assets import MarketAssets, build_funding_asset, build_market_assets
from coin_platform.defs.market.checks import build_funding_checks, build_ohlcv_checks
from coin_platform.defs.market.jobs import build_funding_job
from coin_platform.defs.market.schedules import build_funding_schedule
from coin_platform.defs.market.universe import build_universe_asset, build_universe_job, build_universe_schedule
from coin_platform.settings import Settings


def build_defs(settings: Settings, partitions_def: dg.MultiPartitionsDefinition) -> Domain[MarketAssets]:
    intervals = settings.config.intervals
    steps = {interval: build_market_assets(interval, partitions_def, settings) for interval in intervals}
    checks = [
        build_ohlcv_checks(interval, step.ohlcv, partitions_def, compare_with_1m=interval != "1m" and "1m" in intervals)
        for interval, step in steps.items()
    ]
    funding = build_funding_asset(partitions_def, settings)
    funding_job = build_funding_job(funding)
    assets, jobs = [*(step.step for step in steps.values()), funding], [funding_job]
    schedules = [build_funding_schedule(funding_job, settings.config.symbols)]
    if settings.config.symbols_from_exchange:
        universe = build_universe_asset(settings)
        universe_job = build_universe_job(universe)
        assets.append(universe)
        jobs.append(universe_job)
        schedules.append(build_universe_schedule(universe_job))
    return Domain(
        dg.Definitions(
            assets=assets,
            asset_checks=[*checks, build_funding_checks(funding, partitions_def)],
            jobs=jobs,
            schedules=schedules,
        ),
        steps,
    )
