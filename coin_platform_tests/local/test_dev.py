"""`coin dev [--demo]`'s plan, without starting Dagster: its instance home, the demo's days, the command."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import pytest
import yaml

from coin_platform.local.dev import backfill_window, dagster_dev_command, prepare_dagster_home
from coin_platform.settings import PROJECT_ROOT, Settings, load_settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings({"COIN_CONFIG": str(PROJECT_ROOT / "config.yaml"), "COIN_HOME": str(tmp_path / ".coin")})


def test_the_dagster_home_is_under_coin_home_with_the_projects_dagster_yaml(settings):
    home = prepare_dagster_home(settings)
    assert home == (settings.coin_home / "dagster_home").resolve()
    assert (home / "dagster.yaml").read_bytes() == (PROJECT_ROOT / "dagster.yaml").read_bytes()
    (home / "dagster.yaml").write_text("stale: true\n")
    assert prepare_dagster_home(settings) == home  # again: the same home, the project's file restored
    assert (home / "dagster.yaml").read_bytes() == (PROJECT_ROOT / "dagster.yaml").read_bytes()


def test_the_demo_backfills_the_last_days_today_included(settings):
    today = dt.date(2026, 3, 10)
    days = settings.config.demo.days
    first, last = backfill_window(settings, days, today=today)
    assert last == today
    assert (last - first).days + 1 == days
    assert backfill_window(settings, 1, today=today) == (today, today)


def test_the_demo_backfills_nothing_before_the_history_start(settings):
    start = settings.config.history_start
    assert backfill_window(settings, 30, today=start + dt.timedelta(days=2)) == (start, start + dt.timedelta(days=2))


def test_the_demo_window_defaults_to_the_utc_today(settings):
    before = dt.datetime.now(dt.UTC).date()
    _, last = backfill_window(settings, 3)
    assert before <= last <= dt.datetime.now(dt.UTC).date()


def test_dagster_dev_runs_the_projects_workspace_on_loopback(settings):
    command = dagster_dev_command(settings)
    assert command == [
        str(Path(sys.executable).parent / "dagster"), "dev",
        "-h", "127.0.0.1",
        "-p", str(settings.config.local_stack.dagster_port),
        "-w", str(PROJECT_ROOT / "workspace.yaml"),
    ]
    (location,) = yaml.safe_load((PROJECT_ROOT / "workspace.yaml").read_text())["load_from"]
    assert location["python_module"]["module_name"] == "coin_platform.definitions"
