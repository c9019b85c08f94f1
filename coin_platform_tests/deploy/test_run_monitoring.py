"""Finding 2 of issue 13, recovered: a run killed while holding the `clickhouse` pool slot is failed by run
monitoring, its slot is freed, and the ClickHouse run queued behind it starts.

The prod instance (deploy/dagster.yaml on the session's PostgreSQL) launches runs with the DefaultRunLauncher
into a real `dagster code-server start`, as in the code-location container. The daemon's pieces run in
this process, one iteration at a time: the QueuedRunCoordinatorDaemon (dequeues, honouring the pool) and
the MonitoringDaemon (run monitoring, then freeing the slots of finished runs), as `dagster-daemon run`
would every few seconds. Only the two durations are shortened, so the test waits seconds, not hours.
"""

from __future__ import annotations

import time
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._daemon.daemon import MonitoringDaemon
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import QueuedRunCoordinatorDaemon
from dagster_graphql.client.query import LAUNCH_PIPELINE_EXECUTION_MUTATION
from dagster_graphql.test.utils import execute_dagster_graphql

from coin_platform.defs.resources import CLICKHOUSE_POOL
from coin_platform_tests.deploy import pool_location
from coin_platform_tests.deploy.code_server import code_server
from coin_platform_tests.deploy.instance import deploy_environment, deploy_instance_config, write_deploy_home

LOCATION = Path(__file__).with_name("pool_location.py")
LOCATION_NAME = "pool_test"
MAX_RUNTIME_S = 4
FREE_SLOTS_AFTER_S = 1

pytestmark = pytest.mark.timeout(240)


def _until(condition, what: str, timeout: float = 60.0, step=None):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        if step:
            step()
        time.sleep(0.5)
    return value


def _status(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRunStatus:
    return instance.get_run_by_id(run_id).status


def _slot_holders(instance: dg.DagsterInstance) -> set[str]:
    return {slot.run_id for slot in instance.event_log_storage.get_concurrency_info(CLICKHOUSE_POOL).claimed_slots}


def _submit(workspace: WorkspaceProcessContext, job_name: str) -> str:
    """Launch `job_name` as the UI does (GraphQL launchPipelineExecution): the run coordinator queues it."""
    selector = {"repositoryLocationName": LOCATION_NAME, "repositoryName": "__repository__", "jobName": job_name}
    result = execute_dagster_graphql(
        workspace.create_request_context(),
        LAUNCH_PIPELINE_EXECUTION_MUTATION,
        {"executionParams": {"selector": selector}},
    )
    launched = result.data["launchPipelineExecution"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    return launched["run"]["runId"]


def test_a_killed_run_is_failed_and_its_pool_slot_serves_the_queued_run(
    tmp_path, monkeypatch, postgres_server, postgres_database
):
    assert pool_location.POOL == CLICKHOUSE_POOL
    config = deploy_instance_config()
    monitoring = config["run_monitoring"]
    assert monitoring["enabled"] and monitoring["max_runtime_seconds"] > 0
    assert monitoring["free_slots_after_run_end_seconds"] > 0 and monitoring["poll_interval_seconds"] > 0
    monitoring |= {"max_runtime_seconds": MAX_RUNTIME_S, "free_slots_after_run_end_seconds": FREE_SLOTS_AFTER_S}
    home = write_deploy_home(tmp_path / "dagster_home", postgres_server, config)
    marker = tmp_path / "holding"
    env = deploy_environment(postgres_server, postgres_database) | {"HOLDING_MARKER": str(marker)}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    queue = QueuedRunCoordinatorDaemon(interval_seconds=1)
    monitor = MonitoringDaemon(interval_seconds=monitoring["poll_interval_seconds"])

    with dg.DagsterInstance.from_config(str(home)) as instance:
        with code_server(["-f", str(LOCATION)], LOCATION_NAME, home, env) as server:
            with WorkspaceProcessContext(instance, server.target()) as workspace:
                holder = _submit(workspace, "hold_the_slot")
                _until(lambda: marker.exists(), "the first run's step to hold the slot",
                       step=lambda: list(queue.run_iteration(workspace)))  # fmt: skip
                assert _slot_holders(instance) == {holder}
                waiting = _submit(workspace, "wait_for_the_slot")
                list(queue.run_iteration(workspace))
                assert _status(instance, waiting) == dg.DagsterRunStatus.QUEUED  # the pool's one slot is taken

                server.kill()  # the code-location container goes away, its run worker with it
                # Nobody is left to report the run's end: it stays STARTED and keeps the slot.
                assert _status(instance, holder) == dg.DagsterRunStatus.STARTED

        # The container comes back on the same address.
        with code_server(["-f", str(LOCATION)], LOCATION_NAME, home, env, port=server.port) as server:
            with WorkspaceProcessContext(instance, server.target()) as workspace:
                _until(lambda: _status(instance, holder) == dg.DagsterRunStatus.FAILURE,
                       "run monitoring to fail the dead run",
                       step=lambda: list(monitor.run_iteration(workspace)))  # fmt: skip
                messages = [event.message for event in instance.all_logs(holder)]
                assert f"Canceling due to exceeding maximum runtime of {MAX_RUNTIME_S} seconds." in messages
                assert messages[-1].startswith("This job is being forcibly marked as failed.")

                _until(lambda: not _slot_holders(instance), "the dead run's slot to be freed",
                       step=lambda: list(monitor.run_iteration(workspace)))  # fmt: skip
                _until(lambda: _status(instance, waiting) == dg.DagsterRunStatus.SUCCESS,
                       "the queued ClickHouse run to start and finish",
                       step=lambda: list(queue.run_iteration(workspace)))  # fmt: skip
                assert _slot_holders(instance) == set()
