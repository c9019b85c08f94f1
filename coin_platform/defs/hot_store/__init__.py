"""The hot store domain: `hot_ohlcv_{interval}` (recent candles in ClickHouse) and its checks."""

import dagster as dg

from coin_platform.defs.domain import Domain
from coin_platform.defs.hot_store.assets import build_hot_asset
from coin_platform.defs.hot_store.checks import build_hot_checks
from coin_platform.defs.market.assets import MarketAssets
from coin_platform.settings import Settings


def build_defs(
    settings: Settings, partitions_def: dg.MultiPartitionsDefinition, market: dict[str, MarketAssets]
) -> Domain[dg.AssetsDefinition]:
    assets = {
        interval: build_hot_asset(interval, step.ohlcv, partitions_def, settings) for interval, step in market.items()
    }
    checks = [build_hot_checks(interval, asset, partitions_def, settings) for interval, asset in assets.items()]
    return Domain(dg.Definitions(assets=list(assets.values()), asset_checks=checks), assets)
