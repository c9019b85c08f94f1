"""The public backtest client against real Dagster webservers: launch, status, wait, and its errors."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor

import dagster as dg
import pytest
from dagster_graphql import DagsterGraphQLClient

from coin_platform.backtest.request import BacktestOverrides, parse_request
from coin_platform.client import (
    PARTITION_TAG,
    STATUS_OF,
    BacktestClient,
    BacktestClientError,
    BacktestRequest,
    BacktestTimeoutError,
    DagsterUnreachableError,
    RunNotFoundError,
)
from coin_platform.defs.backtest.inputs import BacktestRunConfig
from coin_platform.local.stack import free_port
from coin_platform_tests.api.conftest import DAYS, SYMBOLS
from coin_platform_tests.leaks import assert_secret_absent

pytestmark = pytest.mark.timeout(600)

REQUEST = BacktestRequest(strategy="ema_crossover", symbols=[SYMBOLS[0]], start=DAYS[0], end=DAYS[0])


def test_what_the_client_sends_is_what_the_run_parses():
    """The UI's run config has the request's fields, and the run reads back exactly what the client sent."""
    assert set(BacktestRunConfig.model_fields) == set(BacktestOverrides.model_fields)
    request = BacktestRequest(strategy="rsi_reversal", symbols=["BTCUSDT"], start="2025-01-01", fee=None, leverage=2)
    assert parse_request(request.overrides()) == BacktestOverrides(
        symbols=["BTCUSDT"], start=dt.date(2025, 1, 1), fee=None, leverage=2
    )


def test_the_client_imports_without_the_backtest_engine():
    """A client process launches runs; it never loads numba or compiles the engine."""
    heavy = ["numba", "coin_platform.backtest.engine"]
    script = f"import sys, coin_platform.client; print([m for m in {heavy!r} if m in sys.modules])"
    loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert loaded == "[]\n"


def test_every_dagster_run_status_has_its_task_status():
    assert set(STATUS_OF) == {status.value for status in dg.DagsterRunStatus}


def test_the_run_config_holds_only_the_fields_given_as_json_values():
    request = BacktestRequest(strategy="rsi_reversal", start="2025-01-01", end=dt.date(2025, 1, 31), stop_loss=None)
    assert request.run_config() == {
        "ops": {"backtest_report": {"config": {"start": "2025-01-01", "end": "2025-01-31", "stop_loss": None}}}
    }
    assert BacktestRequest(strategy="rsi_reversal").run_config() == {"ops": {"backtest_report": {"config": {}}}}


def test_a_launched_run_is_waited_for_until_completed(dagster_runs):
    client = BacktestClient(dagster_runs.url)

    run_id = client.launch(REQUEST)
    state = client.wait(run_id, timeout=180, poll_interval=0.5)

    assert state.run_id == run_id
    assert (state.status, state.dagster_status, state.error) == ("completed", "SUCCESS", None)
    assert state.created_at <= state.started_at <= state.ended_at


def test_a_queued_run_is_queued_and_waiting_for_it_times_out(dagster_queue_only):
    client = BacktestClient(dagster_queue_only.url)
    run_id = client.launch(REQUEST)

    state = client.status(run_id)
    assert (state.status, state.dagster_status, state.started_at, state.error) == ("queued", "QUEUED", None, None)
    with pytest.raises(BacktestTimeoutError, match=f"run {run_id} is still queued after 1 s"):
        client.wait(run_id, timeout=1, poll_interval=0.2)


def test_an_unknown_run_is_not_found(dagster_queue_only):
    run_id = str(uuid.uuid4())
    with pytest.raises(RunNotFoundError, match=f"no run {run_id} on {dagster_queue_only.url}"):
        BacktestClient(dagster_queue_only.url).status(run_id)


def test_a_run_of_another_job_is_no_backtest(dagster_queue_only):
    """An ingest run is a real run of this deployment, but not a backtest_job run."""
    dagster = DagsterGraphQLClient("127.0.0.1", port_number=int(dagster_queue_only.url.rsplit(":", 1)[1]))
    run_id = dagster.submit_job_execution("ingest_15m", tags={PARTITION_TAG: f"{DAYS[0]}|{SYMBOLS[0]}"})
    with pytest.raises(RunNotFoundError, match="is a ingest_15m run, not a backtest"):
        BacktestClient(dagster_queue_only.url).status(run_id)


def test_a_launch_dagster_refuses_says_what_dagster_said(dagster_queue_only):
    """The code location's config schema has no such field: Dagster refuses the run config."""
    client = BacktestClient(dagster_queue_only.url)
    refused = BacktestRequest.model_construct(strategy="rsi_reversal", leverage="two")
    with pytest.raises(BacktestClientError, match="refused launching backtest_job for 'rsi_reversal': RunConfig"):
        client.launch(refused)


def test_status_answers_many_threads_at_once(dagster_queue_only):
    client = BacktestClient(dagster_queue_only.url)
    run_ids = [client.launch(REQUEST) for _ in range(4)]
    with ThreadPoolExecutor(8) as pool:
        states = list(pool.map(client.status, run_ids * 4))
    assert [state.run_id for state in states] == run_ids * 4
    assert {state.status for state in states} == {"queued"}


def test_an_unreachable_dagster_is_named_without_the_urls_password():
    password = "pa55-word-in-url"
    client = BacktestClient(f"https://admin:{password}@127.0.0.1:{free_port()}/dagster")
    for ask in (lambda: client.status(str(uuid.uuid4())), lambda: client.launch(REQUEST), client.dagster_version):
        with pytest.raises(
            DagsterUnreachableError, match=r"Dagster at https://127\.0\.0\.1:\d+/dagster did not answer"
        ) as error:
            ask()
        assert_secret_absent(error.value, password)


@pytest.mark.parametrize(
    "url", ["127.0.0.1:3000", "ftp://user:pa55-word-in-url@host:21", "http://host:99999", "http://host:3000/?x=1"]
)
def test_a_url_that_is_no_dagster_url_is_refused_without_its_password(url):
    with pytest.raises(ValueError, match="the Dagster URL must look like http://host:port") as error:
        BacktestClient(url)
    assert_secret_absent(error.value, "pa55-word-in-url")
