"""The signals domain: `candidates_{interval}` (strategy signals recorded in ClickHouse and published
to Kafka), and the sensor that turns each published candidate into a trade_job run.

The sensor is built apart from the assets (`build_sensor_defs`): its target, trade_job,
belongs to the trading domain, which is built on the candidates.
"""

from collections.abc import Mapping

import dagster as dg

from coin_platform.defs.domain import Domain
from coin_platform.defs.signals.assets import build_candidate_assets
from coin_platform.defs.signals.sensors import build_candidate_sensor
from coin_platform.settings import Settings


def build_defs(
    settings: Settings, partitions_def: dg.MultiPartitionsDefinition, features: Mapping[str, dg.AssetsDefinition]
) -> Domain[dg.AssetsDefinition]:
    assets = {
        interval: build_candidate_assets(interval, asset, partitions_def, settings)
        for interval, asset in features.items()
    }
    return Domain(dg.Definitions(assets=list(assets.values())), assets)


def build_sensor_defs(settings: Settings, trade_job: dg.JobDefinition, trade_op: str) -> dg.Definitions:
    return dg.Definitions(sensors=[build_candidate_sensor(settings, trade_job, trade_op)])
