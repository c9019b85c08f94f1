"""Refresh the universe snapshot from exchangeInfo: what `coin universe refresh` and the usdm_universe asset do.

The snapshot is written whole (core/universe.write_universe), so a failed fetch leaves the last one in
place; the code location picks a change up when it reloads.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from coin_platform.core.universe import Universe, read_universe, write_universe
from coin_platform.market.client import BinanceFuturesClient
from coin_platform.market.universe import UniverseChange, UniverseFilter, perpetual_listings, refreshed_universe
from coin_platform.settings import Settings, UniverseConfig


def _universe_filter(config: UniverseConfig) -> UniverseFilter:
    return UniverseFilter(frozenset(config.quote_assets), config.min_age_days, frozenset(config.exclude))


def refresh_universe(
    client: BinanceFuturesClient, path: Path, config: UniverseConfig, now: dt.datetime
) -> tuple[Universe, UniverseChange]:
    """Read exchangeInfo (weight 1), update the members and write the snapshot at `path`."""
    listings = perpetual_listings(client.exchange_info())
    universe, change = refreshed_universe(read_universe(path), listings, _universe_filter(config), now)
    write_universe(path, universe)
    return universe, change


def refresh_settings_universe(settings: Settings, now: dt.datetime) -> tuple[Universe, UniverseChange]:
    """refresh_universe against the settings' exchange (Binance or the replay server) and snapshot path."""
    with BinanceFuturesClient(settings.market_base_url) as client:
        return refresh_universe(client, settings.universe_path, settings.config.universe, now)
