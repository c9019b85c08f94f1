"""Declarative automation: every automation condition of the derived assets, and the sensor
that evaluates them. Repairs travel downstream: a rematerialized day makes the partitions
that read it stale, and the sensor requests them once nothing upstream is running."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import dagster as dg

# An existing partition is rebuilt when one of its inputs was rematerialized after it, once
# nothing upstream or itself is running. A run that rebuilds input and output together
# updates the output last, so it requests nothing.
REBUILD_AFTER_INPUT_REPAIR = (
    dg.AutomationCondition.any_deps_updated().since_last_handled()
    & ~dg.AutomationCondition.missing()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
)

# A past year's archive follows repairs of its days; the current year follows the schedule.
REBUILD_PAST_YEAR_ON_REPAIR = (
    dg.AutomationCondition.any_deps_updated().since_last_handled()
    & ~dg.AutomationCondition.in_latest_time_window()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
)


def rebuild_inside_retention(retention_days: int) -> dg.AutomationCondition:
    """REBUILD_AFTER_INPUT_REPAIR for days the hot store still keeps (older ones are skipped anyway)."""
    return REBUILD_AFTER_INPUT_REPAIR & dg.AutomationCondition.in_latest_time_window(
        dt.timedelta(days=retention_days + 1)
    )


def build_repair_sensor(targets: Sequence[dg.AssetsDefinition]) -> dg.AutomationConditionSensorDefinition:
    """The one sensor evaluating the conditions above for `targets` (the derived assets)."""
    return dg.AutomationConditionSensorDefinition(
        "repair_automation_sensor",
        target=dg.AssetSelection.assets(*targets),
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=60,
        description="Follows a repaired day downstream: rebuilds a past year's archive after any of its "
        "days is rematerialized, the hot-store day inside the retention, and the existing feature days "
        "whose look-back includes it.",
    )
