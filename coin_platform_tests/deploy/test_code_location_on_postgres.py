"""The project's code location on the prod instance (deploy/dagster.yaml) and a real PostgreSQL 15.

A partition is materialized with `dagster asset materialize` (the run executes in that process, its
events go to PostgreSQL) and read back, through Dagster and straight from PostgreSQL's tables. The prod
deployment (COIN_PLATFORM_ENV=prod) is served by `dagster code-server start`, as deploy/Dockerfile runs
it, and loaded against the same instance as the webserver and daemon would: a schedule turned off
there is kept in PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import uuid
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.workspace.context import WorkspaceProcessContext

from coin_platform.settings import PROJECT_ROOT
from coin_platform.storage.ohlcv import read_ohlcv_day
from coin_platform_tests.defs.harness import market_settings, object_store
from coin_platform_tests.deploy.code_server import code_server
from coin_platform_tests.deploy.instance import deploy_environment, write_deploy_home

DAY = dt.date(2024, 3, 10)
PARTITION = f"{DAY.isoformat()}|BTCUSDT"

pytestmark = pytest.mark.timeout(420)


def test_a_partition_materialized_on_the_deploy_instance_is_read_back_from_postgresql(
    tmp_path, monkeypatch, postgres_server, postgres_database, replay_server, seaweedfs, s3_bucket
):
    for name, value in deploy_environment(postgres_server, postgres_database).items():
        monkeypatch.setenv(name, value)
    settings = market_settings(tmp_path, replay_server.url, seaweedfs, s3_bucket, symbols=("BTCUSDT",),
                               intervals=("1m",))  # fmt: skip
    home = write_deploy_home(tmp_path / "dagster_home", postgres_server)
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "COIN_CONFIG": str(tmp_path / "config.yaml"),
        "COIN_HOME": str(settings.coin_home),
        "MARKET_SOURCE": "replay",
        "REPLAY_URL": replay_server.url,
        "S3_ENDPOINT_URL": seaweedfs.endpoint_url,
        "S3_BUCKET": s3_bucket,
        "AWS_REGION": seaweedfs.region,
        "AWS_ACCESS_KEY_ID": seaweedfs.access_key,
        "AWS_SECRET_ACCESS_KEY": seaweedfs.secret_key,
    }
    dagster = Path(sys.executable).parent / "dagster"
    # Fetching and cleaning are one step: ohlcv_1m comes with raw_klines_1m. The code location's executor
    # runs the step in process.
    command = [str(dagster), "asset", "materialize", "-m", "coin_platform.definitions",
               "--select", "raw_klines_1m,ohlcv_1m", "--partition", PARTITION]  # fmt: skip
    result = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=360)
    assert result.returncode == 0, result.stderr[-4000:]

    with dg.DagsterInstance.from_config(str(home)) as instance:
        [run] = instance.get_runs()
        assert run.status == dg.DagsterRunStatus.SUCCESS
        assert run.tags["dagster/partition"] == PARTITION
        for asset in ("raw_klines_1m", "ohlcv_1m"):
            records = instance.fetch_materializations(dg.AssetKey(asset), limit=10).records
            assert [(r.run_id, r.partition_key) for r in records] == [(run.run_id, PARTITION)], asset
    assert postgres_server.query(postgres_database, "SELECT run_id, status FROM runs") == [(run.run_id, "SUCCESS")]
    materialized = postgres_server.query(
        postgres_database,
        "SELECT asset_key, partition FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION'"
        " AND run_id = %s ORDER BY asset_key",
        (run.run_id,),
    )
    assert materialized == [('["ohlcv_1m"]', PARTITION), ('["raw_klines_1m"]', PARTITION)]
    assert read_ohlcv_day(object_store(settings), "1m", "BTCUSDT", DAY).height == 1440


def _prod_environment(tmp_path: Path) -> dict[str, str]:
    """What compose gives the prod code location, with made-up credentials: loading connects to nothing."""
    return {
        "COIN_PLATFORM_ENV": "prod",
        "COIN_CONFIG": str(PROJECT_ROOT / "config.yaml"),
        "COIN_HOME": str(tmp_path / "coin_home"),
        "S3_ENDPOINT_URL": "http://127.0.0.1:1",
        "S3_BUCKET": "coin-platform",
        "AWS_ACCESS_KEY_ID": uuid.uuid4().hex,
        "AWS_SECRET_ACCESS_KEY": uuid.uuid4().hex,
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
        "CLICKHOUSE_HOST": "127.0.0.1",
        "CLICKHOUSE_PORT": "1",
        "CLICKHOUSE_USER": "coin",
        "CLICKHOUSE_PASSWORD": uuid.uuid4().hex,
        "CLICKHOUSE_SECURE": "false",
        "SNOWFLAKE_ACCOUNT": "coin-test",
        "SNOWFLAKE_USER": "LOADER",
        "SNOWFLAKE_WAREHOUSE": "LOADING",
        "SNOWFLAKE_DATABASE": "COIN",
        "SNOWFLAKE_PRIVATE_KEY": "not read while the code location loads",
        "API_TOKEN": uuid.uuid4().hex,
    }


def test_the_prod_code_location_loads_against_the_deploy_instance(
    tmp_path, monkeypatch, postgres_server, postgres_database
):
    for name, value in deploy_environment(postgres_server, postgres_database).items():
        monkeypatch.setenv(name, value)
    home = write_deploy_home(tmp_path / "dagster_home", postgres_server)
    env = _prod_environment(tmp_path) | deploy_environment(postgres_server, postgres_database)
    with (
        dg.DagsterInstance.from_config(str(home)) as instance,
        code_server(["-m", "coin_platform.definitions"], "coin_platform", home, env) as server,
        WorkspaceProcessContext(instance, server.target()) as workspace,
    ):
        context = workspace.create_request_context()
        assert context.get_code_location_error("coin_platform") is None
        [repository] = context.get_code_location("coin_platform").get_repositories().values()
        assert repository.has_job("ingest_1m") and repository.has_job("compact_history")
        schedule = repository.get_schedule("live_1m_schedule")
        # Live schedules run by default: an operator turning one off is what the instance keeps.
        instance.stop_schedule(schedule.get_remote_origin_id(), schedule.selector_id, schedule)
        stored = postgres_server.query(
            postgres_database,
            "SELECT job_type, status FROM jobs WHERE job_origin_id = %s",
            (schedule.get_remote_origin_id(),),
        )
        assert stored == [("SCHEDULE", "STOPPED")]
