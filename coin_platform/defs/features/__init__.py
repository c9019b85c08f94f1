"""The features domain: `features_{interval}`, indicator features per candle (objects, and ClickHouse
inside the retention)."""

import dagster as dg

from coin_platform.defs.domain import Domain
from coin_platform.defs.features.assets import build_feature_assets
from coin_platform.defs.market.assets import MarketAssets
from coin_platform.settings import Settings


def build_defs(
    settings: Settings, partitions_def: dg.MultiPartitionsDefinition, market: dict[str, MarketAssets]
) -> Domain[dg.AssetsDefinition]:
    assets = {
        interval: build_feature_assets(interval, step.ohlcv, partitions_def, settings)
        for interval, step in market.items()
    }
    return Domain(dg.Definitions(assets=list(assets.values())), assets)
