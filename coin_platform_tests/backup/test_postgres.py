"""A Dagster instance on PostgreSQL: detected from its dagster.yaml, dumped with pg_dump, restored with pg_restore.

The server is a throwaway cluster (initdb, pg_ctl) on a free loopback port; the tests skip only when the
PostgreSQL server or client binaries are not installed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from coin_platform.backup.archive import RestoreRefused, create_backup, read_manifest, restore_backup
from coin_platform.backup.parts import DagsterPostgresPart, PostgresTarget, dagster_part, instance_storage
from coin_platform.local.stack import LOOPBACK, free_port
from coin_platform.storage.object_store import ObjectStore

TOOLS = ("initdb", "pg_ctl", "postgres", "pg_dump", "pg_restore", "psql")
pytestmark = pytest.mark.skipif(
    any(shutil.which(tool) is None for tool in TOOLS), reason=f"PostgreSQL binaries ({', '.join(TOOLS)}) not installed"
)


@pytest.fixture(scope="module")
def postgres_server() -> Iterator[PostgresTarget]:
    """A new cluster for the module (as nobody when the tests run as root: postgres refuses root); its
    `postgres` database."""
    root = Path(tempfile.mkdtemp(prefix="coin-pg-"))
    as_user = ["runuser", "-u", "nobody", "--"] if os.geteuid() == 0 else []
    if as_user:
        shutil.chown(root, "nobody")
    data, port = root / "data", free_port()
    subprocess.run(
        [*as_user, "initdb", "-D", str(data), "-U", "dagster", "--auth=trust"], check=True, capture_output=True
    )
    options = f"-p {port} -k {root} -c listen_addresses={LOOPBACK}"
    subprocess.run(
        [*as_user, "pg_ctl", "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start"],
        check=True,
        capture_output=True,
    )
    try:
        yield PostgresTarget(host=LOOPBACK, port=port, user="dagster", password=None, database="postgres")
    finally:
        subprocess.run(
            [*as_user, "pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop"], check=False, capture_output=True
        )
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres(postgres_server: PostgresTarget) -> PostgresTarget:
    """A database of the test's own on the module's server."""
    name = f"dagster_{uuid.uuid4().hex[:12]}"
    psql(postgres_server, f"CREATE DATABASE {name}")
    return dataclasses.replace(postgres_server, database=name)


def psql(target: PostgresTarget, sql: str) -> str:
    result = subprocess.run(
        ["psql", "--no-psqlrc", "-tA", "-v", "ON_ERROR_STOP=1", "-c", sql],
        env=target.environment(),
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def instance_home(tmp_path: Path, target: PostgresTarget) -> tuple[Path, dict[str, str]]:
    """A DAGSTER_HOME whose dagster.yaml names the database as deploy/dagster.yaml does (env references)."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    names = ("DAGSTER_POSTGRES_USER", "DAGSTER_POSTGRES_PASSWORD", "DAGSTER_POSTGRES_HOSTNAME", "DAGSTER_POSTGRES_DB")
    deployed = yaml.safe_load((Path(__file__).resolve().parents[2] / "deploy" / "dagster.yaml").read_text())
    assert deployed["storage"]["postgres"]["postgres_db"]["hostname"] == {"env": "DAGSTER_POSTGRES_HOSTNAME"}
    storage = {"postgres": {"postgres_db": {**deployed["storage"]["postgres"]["postgres_db"], "port": target.port}}}
    (home / "dagster.yaml").write_text(yaml.safe_dump({"storage": storage}))
    environ = dict(zip(names, (target.user, "", target.host, target.database), strict=True))
    return home, environ


@pytest.fixture
def store(seaweedfs, s3_bucket: str) -> ObjectStore:
    return ObjectStore.s3(
        s3_bucket,
        endpoint_url=seaweedfs.endpoint_url,
        access_key=seaweedfs.access_key,
        secret_key=seaweedfs.secret_key,
        region=seaweedfs.region,
    )


def test_the_instance_config_names_postgres_or_the_sqlite_directory(tmp_path: Path, postgres: PostgresTarget):
    home, environ = instance_home(tmp_path, postgres)
    assert instance_storage(home, environ) == postgres
    assert isinstance(dagster_part(home, environ), DagsterPostgresPart)
    assert instance_storage(tmp_path / "no_config") == tmp_path / "no_config"


def test_a_postgres_instance_is_dumped_and_restored_in_one_transaction(tmp_path, postgres, store):
    home, environ = instance_home(tmp_path, postgres)
    psql(
        postgres,
        "CREATE TABLE runs (run_id text PRIMARY KEY, status text); "
        "INSERT INTO runs VALUES ('r1', 'SUCCESS'), ('r2', 'FAILURE')",
    )
    parts = [dagster_part(home, environ)]
    result = create_backup(store, parts, retention_days=14)
    assert read_manifest(store, result.backup_id)["included"]["dagster"]["storage"] == "postgres"

    psql(postgres, "INSERT INTO runs VALUES ('r3', 'STARTED'); CREATE TABLE later (x int)")
    restore_backup(store, parts, result.backup_id)

    assert psql(postgres, "SELECT string_agg(run_id || ':' || status, ',' ORDER BY run_id) FROM runs") == (
        "r1:SUCCESS,r2:FAILURE"
    )


def test_a_postgres_restore_is_refused_while_the_daemon_beats(tmp_path, postgres, store):
    home, environ = instance_home(tmp_path, postgres)
    psql(postgres, "CREATE TABLE daemon_heartbeats (daemon_type text, daemon_id text, timestamp timestamp, body text)")
    parts = [dagster_part(home, environ)]
    result = create_backup(store, parts, retention_days=14)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(sep=" ")
    psql(postgres, f"INSERT INTO daemon_heartbeats VALUES ('SCHEDULER', 'd1', '{now}', '')")

    with pytest.raises(RestoreRefused, match="Dagster daemon"):
        restore_backup(store, parts, result.backup_id)
    assert psql(postgres, "SELECT count(*) FROM daemon_heartbeats") == "1"
