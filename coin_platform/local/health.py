"""The Dagster half of `coin health`: the instance's daemon heartbeats, schedule and sensor states, and the topic
sensors' lag behind their topics, as probes for coin_platform.health.

Read from the Dagster instance itself (DAGSTER_HOME, else the home `coin dev` prepares), so it answers without
the webserver and without loading the code location. Dagster is imported with this module, before any probe's
clock starts (its import alone takes about a second), and the instance's first open gets an allowance.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from collections.abc import Mapping
from pathlib import Path

from dagster import DagsterInstance
from dagster._core.scheduler.instigation import InstigatorStatus

from coin_platform.health import Check, HealthReport, Probe, check_health, sensor_lag_check
from coin_platform.settings import Settings


def dagster_home(settings: Settings, environ: Mapping[str, str] | None = None) -> Path:
    """DAGSTER_HOME, else the instance `coin dev` runs (coin_platform.local.dev.prepare_dagster_home)."""
    environ = os.environ if environ is None else environ
    return Path(environ.get("DAGSTER_HOME") or settings.coin_home / "dagster_home").resolve()


def topic_sensors(settings: Settings) -> dict[str, str]:
    """The sensors that turn a topic's messages into runs (coin_platform.defs.events), by name, and their topic."""
    events = settings.config.events
    return {"candidate_sensor": events.candidates_topic}


# Opening an instance imports its storages (SQLAlchemy, alembic): about a second, more on a busy machine.
INSTANCE_OPEN_ALLOWANCE_S = 3.0


class DagsterInstanceProbe:
    """Daemons, then schedules and sensors, then the topic sensors' lag, from the instance at `home`, which is
    opened on the first call and kept (the API asks it on every GET /health)."""

    def __init__(self, settings: Settings, home: Path) -> None:
        self.settings = settings
        self.home = home
        self._instance: DagsterInstance | None = None
        self._opening = threading.Lock()

    def __call__(self) -> list[Check]:
        if not (self.home / "dagster.yaml").exists():
            return [
                Check("dagster", str(self.home), "fail", "no Dagster instance here (`coin dev` creates and runs it)")
            ]
        with self._opening:
            if self._instance is None:
                self._instance = DagsterInstance.from_config(str(self.home))
        now = dt.datetime.now(dt.UTC)
        instance = self._instance
        return [*_daemon_checks(instance, self.settings, now), *_instigator_checks(instance, self.settings, now)]


def dagster_checks(settings: Settings, home: Path) -> list[Check]:
    """The instance's checks once, now."""
    return DagsterInstanceProbe(settings, home)()


def _daemon_checks(instance, settings: Settings, now: dt.datetime) -> list[Check]:
    tolerance = settings.config.health.daemon_heartbeat_tolerance_seconds
    heartbeats = instance.get_daemon_heartbeats()
    checks = []
    for daemon in sorted(instance.get_required_daemon_types()):
        beat = heartbeats.get(daemon)
        if beat is None:
            checks.append(Check("dagster_daemon", daemon, "fail", "no heartbeat: the daemon is not running"))
            continue
        age = now.timestamp() - beat.timestamp
        if age > tolerance:
            status, detail = "fail", f"last heartbeat {age:.0f} s ago (limit {tolerance} s)"
        elif beat.errors:
            status, detail = "fail", f"reports an error: {beat.errors[0].message.strip()}"
        else:
            status, detail = "ok", f"heartbeat {age:.0f} s ago"
        checks.append(Check("dagster_daemon", daemon, status, detail))
    return checks


def _instigator_checks(instance, settings: Settings, now: dt.datetime) -> list[Check]:
    """Every schedule and sensor the daemon keeps a state of: all of them start running by default, so a
    stopped one was stopped by someone and is reported; a topic sensor's cursor also gives its lag."""
    topics = topic_sensors(settings)
    checks = []
    for state in sorted(instance.all_instigator_state(), key=lambda s: (s.instigator_type.value, s.name)):
        component = state.instigator_type.value.lower()
        data = state.instigator_data
        last_tick = getattr(data, "last_tick_timestamp", None)  # sensors keep it; schedules keep ticks apart
        ticked = f", last tick {now.timestamp() - last_tick:.0f} s ago" if last_tick else ""
        if state.status == InstigatorStatus.STOPPED:
            checks.append(Check(component, state.name, "fail", f"stopped{ticked}: start it in the UI"))
        else:
            checks.append(Check(component, state.name, "ok", f"running{ticked}"))
        if state.name in topics:
            cursor = getattr(data, "cursor", None)
            checks.append(sensor_lag_check(state.name, topics[state.name], cursor, settings))
    return checks


def dagster_health(
    settings: Settings, environ: Mapping[str, str] | None = None
) -> tuple[dict[str, Probe], dict[str, float]]:
    """The Dagster instance's probe and its timeout: the first open of the instance gets an allowance."""
    probe = DagsterInstanceProbe(settings, dagster_home(settings, environ))
    timeout = settings.config.health.check_timeout_seconds + INSTANCE_OPEN_ALLOWANCE_S
    return {"dagster": probe}, {"dagster": timeout}


def full_health(settings: Settings, environ: Mapping[str, str] | None = None) -> HealthReport:
    """`coin health`: the platform's components and the Dagster instance."""
    probes, timeouts = dagster_health(settings, environ)
    return check_health(settings, extra_probes=probes, extra_timeouts=timeouts, environ=environ)
