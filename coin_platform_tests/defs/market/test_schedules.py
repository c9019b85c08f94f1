"""The live schedules: each tick asks for the day of the candle that just closed, all symbols, only missing;
the funding schedule asks for yesterday and today after each 8-hourly funding time."""

import datetime as dt

import dagster as dg
import pytest

from coin_platform.defs.market.schedules import (
    CRON_BY_INTERVAL,
    build_funding_schedule,
    build_live_schedule,
    funding_run_request,
    live_run_request,
)

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")


@dg.op
def noop() -> None:
    pass


@dg.job(name="ingest_1m")
def ingest_job() -> None:
    noop()


def _range(request: dg.RunRequest) -> tuple[str, str]:
    return (
        request.tags["dagster/asset_partition_range_start"],
        request.tags["dagster/asset_partition_range_end"],
    )


@pytest.mark.parametrize(
    ("tick", "day"),
    [
        (dt.datetime(2024, 3, 10, 12, 31, tzinfo=dt.UTC), "2024-03-10"),
        # At midnight the candle that just closed is yesterday's last one.
        (dt.datetime(2024, 3, 11, 0, 0, tzinfo=dt.UTC), "2024-03-10"),
        (dt.datetime(2024, 3, 11, 0, 15, tzinfo=dt.UTC), "2024-03-11"),
        # A tick in another time zone is the same instant in UTC.
        (dt.datetime(2024, 3, 10, 20, 0, tzinfo=dt.timezone(dt.timedelta(hours=-5))), "2024-03-11"),
    ],
)
def test_a_tick_requests_the_day_of_the_candle_that_just_closed_for_all_symbols(tick, day):
    request = live_run_request("ingest_1m", ["fetch_and_clean_1m"], SYMBOLS, tick)
    assert _range(request) == (f"{day}|BTCUSDT", f"{day}|SOLUSDT")
    assert request.run_config == {"ops": {"fetch_and_clean_1m": {"config": {"only_missing": True}}}}
    assert request.run_key == f"ingest_1m:{tick.isoformat()}"
    assert request.tags["dagster/priority"] == "10"  # the run queue hands it out before backfills queued earlier


@pytest.mark.parametrize("interval", ["1m", "15m", "1h"])
def test_each_interval_ticks_at_its_close_and_starts_its_ingest_job(interval):
    schedule = build_live_schedule(interval, ingest_job, [f"fetch_and_clean_{interval}"], SYMBOLS)
    assert schedule.name == f"live_{interval}_schedule"
    assert schedule.cron_schedule == CRON_BY_INTERVAL[interval]
    assert schedule.execution_timezone == "UTC"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    tick = dt.datetime(2024, 3, 11, 0, 0, tzinfo=dt.UTC)
    (request,) = schedule.evaluate_tick(dg.build_schedule_context(scheduled_execution_time=tick)).run_requests
    assert _range(request) == ("2024-03-10|BTCUSDT", "2024-03-10|SOLUSDT")
    assert request.run_config["ops"] == {f"fetch_and_clean_{interval}": {"config": {"only_missing": True}}}


@dg.job(name="ingest_funding")
def funding_job() -> None:
    noop()


@pytest.mark.parametrize(
    ("tick", "first", "last"),
    [
        # Midnight: yesterday is closed, every funding time of it has passed; today's first has too.
        (dt.datetime(2024, 3, 11, 0, 5, tzinfo=dt.UTC), "2024-03-10", "2024-03-11"),
        (dt.datetime(2024, 3, 11, 16, 5, tzinfo=dt.UTC), "2024-03-10", "2024-03-11"),
        (dt.datetime(2024, 3, 11, 3, 5, tzinfo=dt.timezone(dt.timedelta(hours=9))), "2024-03-09", "2024-03-10"),
    ],
)
def test_a_funding_tick_requests_yesterday_and_today_for_all_symbols(tick, first, last):
    request = funding_run_request("ingest_funding", SYMBOLS, tick)
    assert _range(request) == (f"{first}|BTCUSDT", f"{last}|SOLUSDT")
    assert request.run_key == f"ingest_funding:{tick.isoformat()}"


def test_the_funding_schedule_ticks_after_binances_funding_times():
    schedule = build_funding_schedule(funding_job, SYMBOLS)
    assert schedule.name == "funding_schedule" and schedule.job_name == "ingest_funding"
    assert schedule.cron_schedule == "5 0,8,16 * * *" and schedule.execution_timezone == "UTC"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    tick = dt.datetime(2024, 3, 11, 8, 5, tzinfo=dt.UTC)
    (request,) = schedule.evaluate_tick(dg.build_schedule_context(scheduled_execution_time=tick)).run_requests
    assert _range(request) == ("2024-03-10|BTCUSDT", "2024-03-11|SOLUSDT")
