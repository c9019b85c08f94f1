"""The operations domain: alerts on failed runs, freshness checks of the live edge and their alert, the
scheduled backup."""

from collections.abc import Mapping, Sequence

import dagster as dg

from coin_platform.defs.ops.backup import build_backup_job
from coin_platform.defs.ops.freshness import build_freshness_defs
from coin_platform.defs.ops.sensors import build_failure_alert_sensor
from coin_platform.settings import Settings


def build_defs(settings: Settings, live_assets: Mapping[str, Sequence[dg.AssetKey]]) -> dg.Definitions:
    """`live_assets`: by interval, the assets the live schedule keeps fresh (their freshness checks)."""
    backup_job, backup_schedule = build_backup_job(settings)
    return dg.Definitions.merge(
        dg.Definitions(jobs=[backup_job], schedules=[backup_schedule], sensors=[build_failure_alert_sensor(settings)]),
        build_freshness_defs(settings, live_assets),
    )
