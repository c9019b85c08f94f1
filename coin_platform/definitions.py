"""The code location: `coin_platform.definitions:defs` for the active deployment.

Each domain of `coin_platform.defs` builds its own Definitions on what the domains
upstream of it made; they are merged here with the deployment's resources.
"""

from __future__ import annotations

import datetime as dt
import warnings

import dagster as dg

from coin_platform.defs import (
    archive,
    backtest,
    dbt,
    features,
    hot_store,
    jobs,
    market,
    ml,
    ops,
    signals,
    trading,
    warehouse,
)
from coin_platform.defs.automation import build_repair_sensor
from coin_platform.defs.partitions import history_partitions, market_partitions
from coin_platform.defs.resources import build_resources
from coin_platform.pipeline.universe import refresh_settings_universe
from coin_platform.settings import Settings, get_settings, load_settings

# Deliberate: partitioned asset checks (preview) report per partition, and
# BackfillPolicy (beta) is what makes a backfill a few runs instead of hundreds.
warnings.filterwarnings("ignore", category=dg.PreviewWarning)
warnings.filterwarnings("ignore", category=dg.BetaWarning)


def build_definitions(settings: Settings) -> dg.Definitions:
    days = market_partitions(settings)
    market_defs = market.build_defs(settings, days)
    hot_store_defs = hot_store.build_defs(settings, days, market_defs.by_interval)
    features_defs = features.build_defs(settings, days, market_defs.by_interval)
    signals_defs = signals.build_defs(settings, days, features_defs.by_interval)
    archive_defs = archive.build_defs(settings, history_partitions(settings), market_defs.by_interval)
    trading_defs = trading.build_defs(settings, list(signals_defs.by_interval.values()))
    warehouse_defs = warehouse.build_defs(
        settings, days, market_defs.by_interval, features_defs.by_interval, signals_defs.by_interval
    )
    derived = [archive_defs, hot_store_defs, features_defs, signals_defs]
    return dg.Definitions.merge(
        market_defs.defs,
        hot_store_defs.defs,
        features_defs.defs,
        signals_defs.defs,
        # The candidate sensor's target is trading's trade_job, so it comes after trading.
        signals.build_sensor_defs(settings, trading_defs.trade_job, trading_defs.trade_op),
        archive_defs.defs,
        trading_defs.defs,
        warehouse_defs.defs,
        ml.build_defs(settings),
        backtest.build_defs(settings, market_defs.by_interval, archive_defs.by_interval),
        ops.build_defs(
            settings, _live_assets(market_defs.by_interval, hot_store_defs.by_interval, features_defs.by_interval)
        ),
        dbt.build_defs(settings, days),
        jobs.build_defs(
            settings,
            market_defs.by_interval,
            hot_store_defs.by_interval,
            features_defs.by_interval,
            signals_defs.by_interval,
        ),
        dg.Definitions(
            sensors=[build_repair_sensor([a for domain in derived for a in domain.by_interval.values()])],
            resources=build_resources(settings),
            # Every run executes its steps in its run worker, which has loaded the code location already;
            # Dagster's default would start a process per step that loads it again (seconds per step).
            executor=dg.in_process_executor,
        ),
    )


def _live_assets(
    steps: dict[str, market.MarketAssets],
    hot: dict[str, dg.AssetsDefinition],
    computed: dict[str, dg.AssetsDefinition],
) -> dict[str, list[dg.AssetKey]]:
    """By interval, the assets its live schedule keeps fresh (jobs.live_asset_keys)."""
    return {interval: jobs.live_asset_keys(step, hot[interval], computed[interval]) for interval, step in steps.items()}


def deployment_settings() -> Settings:
    """The settings the code location loads. With `symbols: all` on a new deployment (no universe snapshot yet),
    the first snapshot is written from exchangeInfo here; later ones come from the refresh_universe job."""
    bootstrap = load_settings(bootstrap_universe=True)
    if bootstrap.config.symbols_from_exchange and not bootstrap.universe_path.exists():
        refresh_settings_universe(bootstrap, dt.datetime.now(dt.UTC))
    return get_settings()


defs = build_definitions(deployment_settings())
