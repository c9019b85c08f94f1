"""Live-edge schedules: at each 1m / 15m / 1h close, fetch the newly closed candles; after each of
Binance's 8-hourly funding times, fetch the funding rates.

One run per tick covers every configured symbol (a partition range over the
day's symbols); the candle runs only fetch what is not yet stored.
"""

import datetime as dt
from typing import Any

import dagster as dg

from coin_platform.defs.domain import LIVE_PATH_RUN_TAGS
from coin_platform.defs.partitions import partition_range_tags

CRON_BY_INTERVAL = {"1m": "* * * * *", "15m": "*/15 * * * *", "1h": "0 * * * *"}


def live_run_request(job_name: str, op_names: list[str], symbols: tuple[str, ...], tick: dt.datetime) -> dg.RunRequest:
    """The run for a tick: the day of the candle that just closed, all symbols, only missing.

    `op_names` are the ops that take FetchConfig (the interval's fetch-and-clean step).
    """
    day = (tick.astimezone(dt.UTC) - dt.timedelta(milliseconds=1)).date()
    return dg.RunRequest(
        run_key=f"{job_name}:{tick.isoformat()}",
        run_config={"ops": {name: {"config": {"only_missing": True}} for name in op_names}},
        tags={**partition_range_tags(day, day, symbols[0], symbols[-1]), **LIVE_PATH_RUN_TAGS},
    )


def build_live_schedule(
    interval: str, job: Any, op_names: list[str], symbols: tuple[str, ...]
) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=f"live_{interval}_schedule",
        job=job,
        cron_schedule=CRON_BY_INTERVAL[interval],
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Fetches the {interval} candles that closed since the last stored one.",
    )
    def live_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        return live_run_request(job.name, op_names, symbols, context.scheduled_execution_time)

    return live_schedule


# Five minutes after Binance's default funding times (00:00, 08:00, 16:00 UTC).
FUNDING_CRON = "5 0,8,16 * * *"


def funding_run_request(job_name: str, symbols: tuple[str, ...], tick: dt.datetime) -> dg.RunRequest:
    """The run for a tick: yesterday and today, all symbols. Today's funding times so far; yesterday's
    (whatever its symbols' intervals) are all past by the midnight tick, and later ticks store them again
    in case one was published late."""
    today = tick.astimezone(dt.UTC).date()
    return dg.RunRequest(
        run_key=f"{job_name}:{tick.isoformat()}",
        tags=partition_range_tags(today - dt.timedelta(days=1), today, symbols[0], symbols[-1]),
    )


def build_funding_schedule(job: Any, symbols: tuple[str, ...]) -> dg.ScheduleDefinition:
    @dg.schedule(
        name="funding_schedule",
        job=job,
        cron_schedule=FUNDING_CRON,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Stores the funding rates of yesterday and today after each 8-hourly funding time.",
    )
    def funding_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        return funding_run_request(job.name, symbols, context.scheduled_execution_time)

    return funding_schedule
