"""The backtest domain: backtest_report per strategy (and backtest_job, what the API launches),
strategy_leaderboard, backtest_sweep, and backtest_parity (the live path's orders reproduced by a
backtest of their period).

Every run worker imports the code location, so its modules import the engine (numba) and the reports
(bokeh, matplotlib) inside the asset bodies that use them, not at the top."""

from collections.abc import Mapping

import dagster as dg

from coin_platform.defs.backtest.parity import build_parity_asset, build_parity_schedule
from coin_platform.defs.backtest.reports import build_report_assets
from coin_platform.defs.backtest.sweep import build_sweep_asset
from coin_platform.defs.market.assets import MarketAssets
from coin_platform.settings import Settings

FUNDING_ASSET = dg.AssetKey("funding_rates")


def build_defs(
    settings: Settings, market: Mapping[str, MarketAssets], history: Mapping[str, dg.AssetsDefinition]
) -> dg.Definitions:
    """Backtests read candles through the loader: the history archive and the hourly OHLCV tail."""
    candle_assets = [key for interval in market for key in (market[interval].ohlcv.key, history[interval].key)]
    parity = build_parity_asset(settings, candle_assets)
    parity_job, parity_schedule = build_parity_schedule(parity)
    report, leaderboard, backtest_job = build_report_assets(settings, candle_assets, FUNDING_ASSET)
    sweep = build_sweep_asset(settings, candle_assets)
    return dg.Definitions(
        assets=[parity, report, leaderboard, sweep], jobs=[parity_job, backtest_job], schedules=[parity_schedule]
    )
