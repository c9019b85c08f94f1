"""The Dagster half of `coin health` on a real instance (the project's dagster.yaml in a temporary DAGSTER_HOME),
and the `coin health` command itself against the session's SeaweedFS and tansu."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid

import pytest
from dagster import DagsterInstance
from dagster._core.remote_origin import InProcessCodeLocationOrigin, RemoteInstigatorOrigin, RemoteRepositoryOrigin
from dagster._core.scheduler.instigation import (
    InstigatorState,
    InstigatorStatus,
    InstigatorType,
    ScheduleInstigatorData,
    SensorInstigatorData,
)
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._daemon.types import DaemonHeartbeat
from fastapi.testclient import TestClient

from coin_platform.api.app import create_app
from coin_platform.events.kafka import ensure_topics, make_producer, position_to_cursor, publish
from coin_platform.local.health import dagster_checks, dagster_health, dagster_home
from coin_platform.local.stack import free_port
from coin_platform.settings import PROJECT_ROOT, Settings, load_settings
from coin_platform_tests.test_health import health_environment, last_closed_minute, store_candles

REPOSITORY = RemoteRepositoryOrigin(
    InProcessCodeLocationOrigin(LoadableTargetOrigin(module_name="coin_platform.definitions", attribute="defs")),
    "__repository__",
)


@pytest.fixture
def environment(tmp_path, seaweedfs, s3_bucket, tansu) -> dict[str, str]:
    # A generous timeout: what is checked here is what the report says, on however busy a machine.
    return health_environment(tmp_path, seaweedfs, s3_bucket, tansu.bootstrap_servers, check_timeout_seconds=10)


@pytest.fixture
def settings(environment) -> Settings:
    return load_settings(environment)


@pytest.fixture
def home(settings):
    """The instance `coin dev` prepares: the project's dagster.yaml under COIN_HOME."""
    path = dagster_home(settings, environ={})
    path.mkdir(parents=True)
    shutil.copyfile(PROJECT_ROOT / "dagster.yaml", path / "dagster.yaml")
    return path


def beat(instance: DagsterInstance, seconds_ago: float = 0.0) -> None:
    """A heartbeat of every daemon the instance needs, as a running `dagster-daemon` writes them."""
    for daemon in instance.get_required_daemon_types():
        instance.add_daemon_heartbeat(DaemonHeartbeat(time.time() - seconds_ago, daemon, str(uuid.uuid4())))


def sensor(instance: DagsterInstance, name: str, status: InstigatorStatus, cursor: str | None = None) -> None:
    data = SensorInstigatorData(last_tick_timestamp=time.time() - 3, cursor=cursor)
    instance.add_instigator_state(
        InstigatorState(RemoteInstigatorOrigin(REPOSITORY, name), InstigatorType.SENSOR, status, data)
    )


def schedule(instance: DagsterInstance, name: str, status: InstigatorStatus) -> None:
    data = ScheduleInstigatorData(cron_schedule="* * * * *", start_timestamp=time.time() - 60)
    instance.add_instigator_state(
        InstigatorState(RemoteInstigatorOrigin(REPOSITORY, name), InstigatorType.SCHEDULE, status, data)
    )


def published(settings: Settings, count: int) -> str:
    """The candidates topic with `count` messages; returns its name."""
    topic = settings.config.events.candidates_topic
    ensure_topics(settings.kafka_bootstrap_servers, [topic])
    producer = make_producer(settings.kafka_bootstrap_servers)
    try:
        publish(producer, topic, [(b"k", b"{}")] * count)
    finally:
        producer.close()
    return topic


def checks_by_name(settings, home) -> dict[tuple[str, str], object]:
    return {(c.component, c.name): c for c in dagster_checks(settings, home)}


def test_running_daemons_schedules_and_a_caught_up_sensor_are_healthy(settings, home):
    with DagsterInstance.from_config(str(home)) as instance:
        beat(instance)
        schedule(instance, "live_1m_schedule", InstigatorStatus.DECLARED_IN_CODE)
        sensor(instance, "candidate_sensor", InstigatorStatus.DECLARED_IN_CODE, position_to_cursor({0: 0}))

    checks = checks_by_name(settings, home)

    assert all(check.ok for check in checks.values()), checks
    assert {name for component, name in checks if component == "dagster_daemon"} >= {"SCHEDULER", "SENSOR"}
    assert checks[("schedule", "live_1m_schedule")].detail == "running"
    assert checks[("sensor", "candidate_sensor")].detail.startswith("running, last tick ")
    topic = settings.config.events.candidates_topic
    assert checks[("sensor_lag", "candidate_sensor")].detail == f"{topic} does not exist yet: nothing to read"


def test_a_stopped_sensor_a_silent_daemon_and_a_lagging_sensor_are_named(settings, home):
    topic = published(settings, 3)
    with DagsterInstance.from_config(str(home)) as instance:
        beat(instance, seconds_ago=600)
        sensor(instance, "run_failure_alert_sensor", InstigatorStatus.STOPPED)
        sensor(instance, "candidate_sensor", InstigatorStatus.DECLARED_IN_CODE, position_to_cursor({0: 0}))

    checks = checks_by_name(settings, home)

    assert checks[("sensor", "run_failure_alert_sensor")].status == "fail"
    stopped = checks[("sensor", "run_failure_alert_sensor")].detail
    assert stopped.startswith("stopped, last tick ") and stopped.endswith(" s ago: start it in the UI")
    silent = checks[("dagster_daemon", "SENSOR")]
    assert silent.status == "fail" and re.fullmatch(r"last heartbeat 6\d\d s ago \(limit 60 s\)", silent.detail)
    lag = checks[("sensor_lag", "candidate_sensor")]
    assert lag.ok and lag.detail.startswith(f"3 message(s) of {topic} behind")


def test_no_instance_is_named(settings):
    (check,) = dagster_checks(settings, dagster_home(settings, environ={}))
    assert check.status == "fail" and "no Dagster instance here" in check.detail


def test_coin_health_prints_json_and_exits_1_naming_what_is_wrong(environment, settings, home):
    now = dt.datetime.now(dt.UTC)
    store_candles(settings, last_closed_minute(now), now)
    with DagsterInstance.from_config(str(home)) as instance:
        beat(instance)
        sensor(instance, "candidate_sensor", InstigatorStatus.STOPPED)
    environment = {
        **os.environ,
        **environment,
        "DAGSTER_HOME": str(home),
        "PYTHONPATH": str(PROJECT_ROOT),
    }

    answer = subprocess.run(
        [sys.executable, "-m", "coin_platform.local.cli", "health", "--json"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert answer.returncode == 1, answer.stderr
    report = json.loads(answer.stdout)
    assert report["status"] == "fail"
    assert report["problems"][0].startswith("clickhouse ") and "no hot store here yet" in report["problems"][0]
    assert any(p.startswith("sensor candidate_sensor: stopped") for p in report["problems"]), report["problems"]
    assert {c["component"] for c in report["checks"] if c["status"] == "ok"} >= {"s3", "kafka", "candles"}


def test_the_api_reports_the_instance_as_coin_api_wires_it(settings, home):
    with DagsterInstance.from_config(str(home)) as instance:
        beat(instance)
        sensor(instance, "candidate_sensor", InstigatorStatus.STOPPED)
    probes, timeouts = dagster_health(settings, environ={"DAGSTER_HOME": str(home)})
    app = create_app(
        settings,
        environ={"DAGSTER_URL": f"http://127.0.0.1:{free_port()}"},
        health_probes=probes,
        health_timeouts=timeouts,
    )
    with TestClient(app) as api:
        response = api.get("/health")

    assert response.status_code == 503
    assert any(p.startswith("sensor candidate_sensor: stopped, last tick ") for p in response.json()["problems"])
