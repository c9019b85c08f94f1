"""Freshness of the live edge on a real Dagster instance: a fresh live asset passes its check, a stale one fails it
and the alert sensor sends one alert to the loopback webhook (the run-failure alert's test seam)."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest
from dagster._core.test_utils import freeze_time

from coin_platform.defs.ops.freshness import FRESHNESS_ALERT_SENSOR, FRESHNESS_SENSOR, build_freshness_defs
from coin_platform.settings import PROJECT_ROOT, load_settings

DAYS = dg.DailyPartitionsDefinition(start_date="2025-01-01", end_offset=1)  # today included, as the live edge
PARTITIONS = dg.MultiPartitionsDefinition({"date": DAYS, "symbol": dg.StaticPartitionsDefinition(["BTCUSDT"])})


@dg.asset(key="ohlcv_1m", partitions_def=PARTITIONS)
def ohlcv_1m() -> None:
    """Stands for the live asset: partitioned UTC day × symbol like the real one."""


@pytest.fixture
def alerting(webhook, tmp_path):
    url, received, _ = webhook
    settings = load_settings(
        {"COIN_CONFIG": str(PROJECT_ROOT / "config.yaml"), "COIN_HOME": str(tmp_path), "ALERT_SLACK_WEBHOOK_URL": url}
    )
    freshness = build_freshness_defs(settings, {"1m": [ohlcv_1m.key]})
    checks_job = dg.define_asset_job("freshness_checks", selection=dg.AssetSelection.checks(*freshness.asset_checks))
    defs = dg.Definitions.merge(freshness, dg.Definitions(assets=[ohlcv_1m], jobs=[checks_job]))
    return settings, defs, received


def materialize_today(instance: dg.DagsterInstance) -> None:
    today = dt.datetime.now(dt.UTC).date().isoformat()
    key = dg.MultiPartitionKey({"date": today, "symbol": "BTCUSDT"})
    assert dg.materialize([ohlcv_1m], instance=instance, partition_key=key).success


def tick_freshness_sensor(defs: dg.Definitions, instance: dg.DagsterInstance) -> None:
    """One tick of the freshness sensor, and the run it requests (the checks only), as the daemon would do."""
    request = defs.resolve_sensor_def(FRESHNESS_SENSOR)(dg.build_sensor_context(instance=instance, definitions=defs))
    assert isinstance(request, dg.RunRequest), request
    assert list(request.asset_check_keys) == [dg.AssetCheckKey(ohlcv_1m.key, "freshness_check")]
    assert defs.resolve_job_def("freshness_checks").execute_in_process(instance=instance).success


def tick_alert_sensor(defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None) -> str | None:
    context = dg.build_sensor_context(instance=instance, definitions=defs, cursor=cursor)
    defs.resolve_sensor_def(FRESHNESS_ALERT_SENSOR)(context)
    return context.cursor


def newest_evaluation(instance: dg.DagsterInstance) -> dg.AssetCheckEvaluation:
    key = dg.AssetCheckKey(ohlcv_1m.key, "freshness_check")
    record = instance.event_log_storage.get_asset_check_summary_records([key])[
        key
    ].last_completed_check_execution_record
    return record.event.asset_check_evaluation


def test_the_limit_follows_the_interval(alerting):
    settings, _, _ = alerting
    health = settings.config.health
    assert health.stale_after("1m") == dt.timedelta(minutes=3)
    assert health.stale_after("15m") == dt.timedelta(minutes=31)
    assert health.stale_after("1h") == dt.timedelta(hours=2, minutes=1)


def test_a_fresh_live_asset_passes_and_a_stale_one_fails_and_alerts_once(alerting):
    settings, defs, received = alerting
    with dg.instance_for_test() as instance:
        materialize_today(instance)
        tick_freshness_sensor(defs, instance)
        assert newest_evaluation(instance).passed
        cursor = tick_alert_sensor(defs, instance, None)
        assert received == []

        later = dt.datetime.now(dt.UTC) + settings.config.health.stale_after("1m") + dt.timedelta(minutes=1)
        with freeze_time(later):
            tick_freshness_sensor(defs, instance)
            stale = newest_evaluation(instance)
            cursor = tick_alert_sensor(defs, instance, cursor)
            again = tick_alert_sensor(defs, instance, cursor)

        assert not stale.passed and "overdue" in stale.description
        (alert,) = received  # a second tick while it stays stale sends nothing more
        assert alert["body"]["text"] == f"*coin_platform: 1 live asset(s) stale*\nohlcv_1m: {stale.description}"
        assert again == cursor

        with freeze_time(later + dt.timedelta(minutes=1)):
            materialize_today(instance)
            tick_freshness_sensor(defs, instance)  # the asset was updated since the failure: evaluated again
            assert newest_evaluation(instance).passed
            assert tick_alert_sensor(defs, instance, cursor) == '{"ohlcv_1m:freshness_check": true}'
        assert len(received) == 1
