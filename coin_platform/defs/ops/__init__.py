"""The operations domain: alerts on failed runs."""

import dagster as dg

from coin_platform.defs.ops.sensors import build_failure_alert_sensor
from coin_platform.settings import Settings


def build_defs(settings: Settings) -> dg.Definitions:
    return dg.Definitions(sensors=[build_failure_alert_sensor(settings)])
