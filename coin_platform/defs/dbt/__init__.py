"""The dbt domain: the dbt_snowflake models over the warehouse as assets, their tests as asset checks."""

import dagster as dg

from coin_platform.defs.dbt.assets import build_dbt_assets, prepared_project
from coin_platform.defs.partitions import DATE
from coin_platform.settings import Settings


def build_defs(settings: Settings, partitions_def: dg.MultiPartitionsDefinition) -> dg.Definitions:
    """Daily partitions are the market partitions' date dimension, so a warehouse day maps onto them."""
    days = partitions_def.get_partitions_def_for_dimension(DATE)
    assets = build_dbt_assets(prepared_project(), days, settings.config.trading.fee_rate)
    return dg.Definitions(assets=assets)
