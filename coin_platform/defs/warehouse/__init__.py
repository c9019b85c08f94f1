"""The warehouse domain: `warehouse_{table}` assets that load each raw table of the warehouse
(DuckDB locally, Snowflake in prod) a partition at a time, aligned with the assets they copy."""

from collections.abc import Mapping

import dagster as dg

from coin_platform.defs.domain import Domain
from coin_platform.defs.market.assets import MarketAssets
from coin_platform.defs.partitions import daily_partitions
from coin_platform.defs.warehouse.assets import (
    build_candidates_load,
    build_decisions_load,
    build_market_load,
    build_trading_load,
)
from coin_platform.settings import Settings


def build_defs(
    settings: Settings,
    partitions_def: dg.MultiPartitionsDefinition,
    market: Mapping[str, MarketAssets],
    features: Mapping[str, dg.AssetsDefinition],
    candidates: Mapping[str, dg.AssetsDefinition],
) -> Domain[list[dg.AssetsDefinition]]:
    days = daily_partitions(settings)
    by_interval = {
        interval: [
            build_market_load("ohlcv", interval, market[interval].ohlcv.key, partitions_def, settings),
            build_market_load("features", interval, features[interval].key, partitions_def, settings),
        ]
        for interval in market
    }
    assets = [
        *(asset for loads in by_interval.values() for asset in loads),
        build_candidates_load(candidates, partitions_def, settings),
        build_decisions_load(days),
        build_trading_load(days),
    ]
    return Domain(dg.Definitions(assets=assets), by_interval)
