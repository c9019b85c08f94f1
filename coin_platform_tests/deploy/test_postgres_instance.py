"""deploy/dagster.yaml opens on a real PostgreSQL with the drivers the project installs.

SQLAlchemy 2.1 maps a bare `postgresql://` URL to psycopg 3, while dagster-postgres brings psycopg2:
without `scheme: postgresql+psycopg2` the instance fails with "No module named 'psycopg'".
"""

from __future__ import annotations

import dagster as dg

from coin_platform_tests.deploy.instance import deploy_environment, write_deploy_home


def test_the_deploy_instance_opens_on_postgresql_and_keeps_a_run(
    tmp_path, monkeypatch, postgres_server, postgres_database
):
    for name, value in deploy_environment(postgres_server, postgres_database).items():
        monkeypatch.setenv(name, value)
    home = write_deploy_home(tmp_path / "dagster_home", postgres_server)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        run = instance.create_run_for_job(dg.GraphDefinition("noop", node_defs=[]).to_job())
    assert postgres_server.query(postgres_database, "SELECT run_id FROM runs") == [(run.run_id,)]
