"""The ingest jobs, `ingest_{interval}`, and the live schedules that start them.

An ingest job spans four domains: it fetches and cleans (market), loads the hot store
(hot_store), computes features (features) and detects candidates (signals) for a day ×
symbol range. It belongs to none of them, so it is built here, on top of them. Its live
schedule (defs/market/schedules.py: the market's live edge decides when and what to fetch)
is attached here because a schedule needs its job. Jobs inside one domain live in that
domain (archive/jobs.py, trading/).
"""

from collections.abc import Mapping

import dagster as dg

from coin_platform.defs.market.assets import MarketAssets
from coin_platform.defs.market.schedules import build_live_schedule
from coin_platform.defs.ops.freshness import freshness_check_keys
from coin_platform.settings import Settings


def live_asset_keys(step: MarketAssets, hot: dg.AssetsDefinition, features: dg.AssetsDefinition) -> list[dg.AssetKey]:
    """What an interval's live schedule materializes every interval and must keep fresh: ohlcv, the hot table,
    the features (candidates are written only when a strategy fires)."""
    return [step.ohlcv.key, *hot.keys, *features.keys]


def build_ingest_job(interval: str, assets: list[dg.AssetsDefinition], live: list[dg.AssetKey]):
    return dg.define_asset_job(
        name=f"ingest_{interval}",
        # The freshness checks of the `live` assets run from their own sensor (defs/ops/freshness.py), not in
        # the live path.
        selection=dg.AssetSelection.assets(*assets) - dg.AssetSelection.checks(*freshness_check_keys(live)),
        executor_def=dg.in_process_executor,
        description=f"Fetch, clean, load into the hot store, compute features of {interval} candles "
        "and detect candidates for a day × symbol range.",
    )


def build_defs(
    settings: Settings,
    market: Mapping[str, MarketAssets],
    hot_store: Mapping[str, dg.AssetsDefinition],
    features: Mapping[str, dg.AssetsDefinition],
    candidates: Mapping[str, dg.AssetsDefinition],
) -> dg.Definitions:
    """One ingest job and one live schedule per interval."""
    jobs, schedules = [], []
    for interval, step in market.items():
        job = build_ingest_job(
            interval,
            [step.step, hot_store[interval], features[interval], candidates[interval]],
            live_asset_keys(step, hot_store[interval], features[interval]),
        )
        jobs.append(job)
        schedules.append(build_live_schedule(interval, job, [step.op_name], settings.config.symbols))
    return dg.Definitions(jobs=jobs, schedules=schedules)
