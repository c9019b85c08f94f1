"""The prod Dagster instance (deploy/dagster.yaml) pointed at the test PostgreSQL server."""

from __future__ import annotations

from pathlib import Path

import yaml

from coin_platform.local.stack.postgres import PostgresServer
from coin_platform.settings import PROJECT_ROOT

DEPLOY_INSTANCE = PROJECT_ROOT / "deploy" / "dagster.yaml"


def deploy_instance_config() -> dict:
    return yaml.safe_load(DEPLOY_INSTANCE.read_text())


def write_deploy_home(home: Path, server: PostgresServer, config: dict | None = None) -> Path:
    """DAGSTER_HOME holding deploy/dagster.yaml (or `config`, a changed copy of it) as is, but for the
    PostgreSQL port (the file names compose's fixed 5432, the test server listens on a free port) and the
    two parts that need what this machine lacks: the DockerRunLauncher (a Docker engine; runs start from the
    code server instead, Dagster's default) and the S3 compute logs (compose's bucket; local files instead).
    Both are checked against Dagster's config schema in test_dagster_instance.py."""
    config = config or deploy_instance_config()
    config["storage"]["postgres"]["postgres_db"]["port"] = server.port
    config.pop("run_launcher", None)
    config.pop("compute_logs", None)
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    return home


def deploy_environment(server: PostgresServer, database: str) -> dict[str, str]:
    """The variables deploy/dagster.yaml reads its credentials from, as compose sets them."""
    return {
        "DAGSTER_POSTGRES_USER": server.user,
        "DAGSTER_POSTGRES_PASSWORD": server.password,
        "DAGSTER_POSTGRES_HOSTNAME": server.host,
        "DAGSTER_POSTGRES_DB": database,
    }
