"""A backtest over HTTP, end to end: POST run-async, poll the status to the end, read the report.

The app is wired to a Dagster webserver of the project's code location that launches every run as it
is submitted, and to the session's SeaweedFS, where the run reads its candles and writes its outputs.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid

import pytest

from coin_platform.storage.backtests import read_backtest_summary
from coin_platform.storage.object_store import ObjectStore
from coin_platform_tests.api.conftest import DAYS, SYMBOLS

RUN_TIMEOUT_S = 180
POLL_S = 0.5

pytestmark = pytest.mark.timeout(600)


def _poll_until_finished(api, task_id: str) -> list[dict]:
    """Every status answer from the first to the first completed or failed one."""
    answers = []
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        response = api.get(f"/api/backtests/status/{task_id}")
        assert response.status_code == 200, response.text
        answers.append(response.json())
        if answers[-1]["status"] in ("completed", "failed"):
            return answers
        time.sleep(POLL_S)
    raise AssertionError(f"task {task_id} still {answers[-1]['status']} after {RUN_TIMEOUT_S} s")


def _launch(api, **request) -> str:
    response = api.post("/api/backtests/run-async", json=request)
    assert response.status_code == 202, response.text
    body = response.json()
    assert set(body) == {"task_id", "status", "created_at"}
    assert body["status"] == "queued"
    created = dt.datetime.fromisoformat(body["created_at"])
    assert abs((dt.datetime.now(dt.UTC) - created).total_seconds()) < 60
    return body["task_id"]


NO_CANDLES_DAY = DAYS[0] - dt.timedelta(days=10)


@pytest.fixture(scope="module")
def launched(api) -> dict[str, str]:
    """Both backtests launched at once, so their runs (each a process loading the code location) overlap."""
    return {
        "with_candles": _launch(
            api,
            strategy="rsi_reversal",
            symbols=list(SYMBOLS),
            interval="15m",
            start=DAYS[0].isoformat(),
            end=DAYS[-1].isoformat(),
            leverage=2,
            stop_loss=None,
            funding=False,
        ),
        "without_candles": _launch(
            api,
            strategy="ema_crossover",
            symbols=["ETHUSDT"],
            start=NO_CANDLES_DAY.isoformat(),
            end=NO_CANDLES_DAY.isoformat(),
        ),
    }


def test_a_backtest_runs_to_completed_with_its_metrics_and_report(api, api_settings, launched):
    task_id = launched["with_candles"]
    uuid.UUID(task_id)  # the Dagster run id

    answers = _poll_until_finished(api, task_id)

    assert {answer["status"] for answer in answers} <= {"queued", "running", "completed"}
    progress = [answer["progress"] for answer in answers]
    assert all(0 <= p <= 1 for p in progress) and progress == sorted(progress)
    last = answers[-1]
    assert last == {"task_id": task_id, "status": "completed", "progress": 1.0, "error": None, "result": last["result"]}
    summary = read_backtest_summary(ObjectStore.from_settings(api_settings), task_id)
    assert last["result"] == summary["metrics"]
    assert isinstance(last["result"]["trade_count"], int)
    assert summary["params"]["leverage"] == 2

    report = api.get(f"/api/backtests/{task_id}/report")
    assert report.status_code == 200
    assert report.headers["content-type"].startswith("text/html")
    assert f"rsi_reversal · {', '.join(SYMBOLS)} · 15m · {DAYS[0]}..{DAYS[-1]}" in report.text


def test_a_backtest_without_candles_fails_and_says_why(api, launched):
    task_id = launched["without_candles"]

    last = _poll_until_finished(api, task_id)[-1]

    assert last["status"] == "failed"
    assert last["result"] is None
    assert last["error"].startswith("backtest_report: no 15M candles for ETHUSDT between "), last["error"]
    report = api.get(f"/api/backtests/{task_id}/report")
    assert report.status_code == 404
    assert report.json()["detail"] == f"task {task_id} has no report: it is failed"
