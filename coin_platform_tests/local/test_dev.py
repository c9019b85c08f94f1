"""`coin dev [--demo]`'s plan, without starting Dagster: its instance home, the demo's days, the command,
the API it starts next to the UI (a real `coin api` process, stopped by PID, logging JSON), and the
backfill's progress on the console."""

from __future__ import annotations

import datetime as dt
import io
import json
import socket
import sys
from pathlib import Path

import pytest
import requests
import yaml
from rich.console import Console

from coin_platform.core.progress import backfill_status
from coin_platform.local.dev import (
    BackfillProgress,
    api_url,
    backfill_window,
    dagster_dev_command,
    prepare_dagster_home,
    start_api,
)
from coin_platform.local.stack import StackError, free_port
from coin_platform.settings import PROJECT_ROOT, ApiConfig, Settings, load_settings


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
        "--log-format", "json",
    ]
    (location,) = yaml.safe_load((PROJECT_ROOT / "workspace.yaml").read_text())["load_from"]
    assert location["python_module"]["module_name"] == "coin_platform.definitions"


@pytest.fixture
def api_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The project's config.yaml with the API on a free port, in this process and for the `coin api` it starts."""
    config = yaml.safe_load((PROJECT_ROOT / "config.yaml").read_text())
    config["api"] = {"host": "127.0.0.1", "port": free_port()}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    environ = {"COIN_CONFIG": str(path), "COIN_HOME": str(tmp_path / ".coin"), "COIN_PLATFORM_ENV": "local",
               "DAGSTER_URL": f"http://127.0.0.1:{free_port()}"}
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("API_TOKEN", raising=False)
    return load_settings(environ)


def test_the_api_starts_in_the_background_and_stops_by_pid(api_settings, tmp_path):
    log_file = tmp_path / "api.log"

    api = start_api(api_settings, log_file)
    try:
        assert api_url(api_settings) == f"http://127.0.0.1:{api_settings.config.api.port}"
        answer = requests.get(f"{api_url(api_settings)}/health", timeout=10)
        health = answer.json()
        assert answer.status_code == 503 and health["status"] == "fail"  # no Dagster in this test
        assert any(problem.startswith("dagster_webserver") for problem in health["problems"]), health["problems"]
        strategies = requests.get(f"{api_url(api_settings)}/api/strategies", timeout=10).json()
        assert [s["name"] for s in strategies] == [s.name for s in api_settings.config.strategies]
    finally:
        api.stop()
    assert not api.is_running()
    assert "Uvicorn running on" in log_file.read_text()
    lines = [json.loads(line) for line in (api_settings.coin_home / "logs" / "api.jsonl").read_text().splitlines()]
    (access,) = [line for line in lines if line["logger"] == "uvicorn.access" and "/api/strategies" in line["message"]]
    assert access["level"] == "info" and " 200" in access["message"]


def test_the_api_refuses_a_port_in_use(api_settings, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", api_settings.config.api.port))
        taken.listen()
        with pytest.raises(StackError, match=r"cannot start the API: .* change api.port in config.yaml"):
            start_api(api_settings, tmp_path / "api.log")


def test_an_api_that_cannot_start_says_why(api_settings, tmp_path, monkeypatch):
    monkeypatch.setenv("COIN_PLATFORM_ENV", "prod")
    # Keys of its own: after `make dev` a .env with the example pair exists, which prod refuses before the token.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "prod-test-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "prod-test-secret-0123456789")
    with pytest.raises(StackError, match="api exited during start-up(.|\n)*API_TOKEN is not set"):
        start_api(api_settings, tmp_path / "api.log")


def test_a_wildcard_api_host_is_reached_on_loopback(settings):
    wildcard = settings.model_copy(
        update={"config": settings.config.model_copy(update={"api": ApiConfig(host="0.0.0.0", port=8800)})}
    )
    assert api_url(wildcard) == "http://127.0.0.1:8800"


def test_the_backfill_status_says_partitions_done_candles_per_second_and_time_left():
    assert backfill_status(0, 27, 0, 0.0) == "0/27 partitions · 0 candles · time left unknown"
    assert backfill_status(9, 27, 38_880, 12.0) == "9/27 partitions · 3,240 candles/s · 0:24 left"
    assert backfill_status(27, 27, 116_640, 95.5) == "27/27 partitions · 1,221 candles/s · 0:00 left"


def test_the_backfill_progress_bar_renders_each_run_and_names_a_failed_one():
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=110, color_system=None)
    now = iter([0.0, 0.0, 10.0, 20.0])
    with BackfillProgress(6, console, clock=lambda: next(now)) as progress:
        progress.advance("1m BTCUSDT", 3, 4_320)
        progress.advance("1m ETHUSDT", 3, 0, failed_run="a1b2c3")
    text = screen.getvalue()
    assert "1m BTCUSDT" in text and "3/6 partitions · 432 candles/s · 0:10 left" in text
    assert "1m ETHUSDT: FAILED, see run a1b2c3 in the UI or the log files" in text
    assert "6/6 partitions · 216 candles/s · 0:00 left" in text
    with pytest.raises(ValueError, match="at least one partition"):
        BackfillProgress(0, console)


def test_the_backfill_progress_is_a_line_per_run_when_the_output_is_not_a_terminal():
    screen = io.StringIO()
    now = iter([0.0, 0.0, 4.0])
    console = Console(file=screen, force_terminal=False, width=110)
    with BackfillProgress(3, console, clock=lambda: next(now)) as progress:
        progress.advance("1h SOLUSDT", 3, 72)
    assert "  1h SOLUSDT: 3/3 partitions · 18 candles/s · 0:00 left" in screen.getvalue().splitlines()
