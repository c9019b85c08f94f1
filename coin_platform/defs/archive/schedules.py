"""The history archive's schedule: once a day, add the day that just closed to its year's archives."""

import datetime as dt
from typing import Any

import dagster as dg

from coin_platform.defs.partitions import year_range_tags


def history_run_request(job_name: str, symbols: tuple[str, ...], tick: dt.datetime) -> dg.RunRequest:
    """The run for a tick: the year of the day that just closed (at New Year, the old year), all symbols."""
    year = (tick.astimezone(dt.UTC) - dt.timedelta(days=1)).year
    return dg.RunRequest(
        run_key=f"{job_name}:{tick.isoformat()}",
        tags=year_range_tags(year, year, symbols[0], symbols[-1]),
    )


def build_history_schedule(job: Any, symbols: tuple[str, ...]) -> dg.ScheduleDefinition:
    """Compact the year of the day that just closed, for every symbol, once a day."""

    @dg.schedule(
        name="history_daily_schedule",
        job=job,
        cron_schedule="20 0 * * *",
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Adds the day that just closed to the current year's archives.",
    )
    def history_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        return history_run_request(job.name, symbols, context.scheduled_execution_time)

    return history_schedule
