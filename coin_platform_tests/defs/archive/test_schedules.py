"""The history schedule: each day it compacts the year of the day that just closed."""

import datetime as dt

import dagster as dg
import pytest

from coin_platform.defs.archive.schedules import build_history_schedule, history_run_request

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")


@dg.op
def noop() -> None:
    pass


@dg.job(name="compact_history")
def compact_job() -> None:
    noop()


@pytest.mark.parametrize(
    ("tick", "year"),
    [
        # At New Year the day that closed is the old year's last: that year is compacted once more.
        (dt.datetime(2027, 1, 1, 0, 20, tzinfo=dt.UTC), "2026"),
        (dt.datetime(2027, 1, 2, 0, 20, tzinfo=dt.UTC), "2027"),
        (dt.datetime(2026, 7, 1, 0, 20, tzinfo=dt.UTC), "2026"),
    ],
)
def test_a_tick_requests_the_year_of_the_day_that_closed_for_all_symbols(tick, year):
    request = history_run_request("compact_history", SYMBOLS, tick)
    assert request.tags["dagster/asset_partition_range_start"] == f"BTCUSDT|{year}"
    assert request.tags["dagster/asset_partition_range_end"] == f"SOLUSDT|{year}"
    assert request.run_key == f"compact_history:{tick.isoformat()}"


def test_the_schedule_runs_daily_after_midnight_utc():
    schedule = build_history_schedule(compact_job, SYMBOLS)
    assert (schedule.name, schedule.cron_schedule, schedule.execution_timezone) == (
        "history_daily_schedule",
        "20 0 * * *",
        "UTC",
    )
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    tick = dt.datetime(2027, 1, 1, 0, 20, tzinfo=dt.UTC)
    (request,) = schedule.evaluate_tick(dg.build_schedule_context(scheduled_execution_time=tick)).run_requests
    assert request.tags["dagster/asset_partition_range_start"] == "BTCUSDT|2026"
