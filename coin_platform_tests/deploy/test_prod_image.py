"""The prod image has no chDB (the `local` extra): the prod code location must load without it, and
the local hot store must say what is missing instead of failing deep inside clickhouse-connect."""

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Runs in a fresh interpreter: `import chdb` fails there as it does in the prod image.
_LOAD_PROD_LOCATION = """
import os, sys
sys.modules["chdb"] = None
# The checkout's dbt manifest, parsed for the local target as the rest of the suite has it (the image
# has its own built in); a prod parse would want Snowflake credentials.
os.environ["COIN_PLATFORM_ENV"] = "local"
from coin_platform.defs.dbt.assets import prepared_project
prepared_project()
os.environ["COIN_PLATFORM_ENV"] = "prod"
from coin_platform.definitions import defs
assert defs.resources["clickhouse"].mode == "server"
jobs = [job.name for job in defs.resolve_all_job_defs()]
assert sys.modules["chdb"] is None, "something imported chdb"
print(len(jobs))
"""


def test_the_prod_code_location_loads_without_chdb(tmp_path):
    environment = {
        **{name: value for name, value in os.environ.items() if not name.startswith(("COIN_", "SNOWFLAKE_"))},
        "PYTHONPATH": str(ROOT),
        "COIN_PLATFORM_ENV": "prod",
        "COIN_HOME": str(tmp_path / "coin_home"),
        "COIN_CONFIG": str(ROOT / "config.yaml"),
        "CLICKHOUSE_HOST": "clickhouse.invalid",
        "CLICKHOUSE_USER": "coin",
        "CLICKHOUSE_PASSWORD": "unused",
        "S3_ENDPOINT_URL": "http://s3.invalid:8333",
        "AWS_ACCESS_KEY_ID": "prod-user",
        "AWS_SECRET_ACCESS_KEY": "prod-secret",
        # As docker-compose.yml sets them until the warehouse is configured.
        **dict.fromkeys(("SNOWFLAKE_ACCOUNT", "SNOWFLAKE_USER", "SNOWFLAKE_WAREHOUSE", "SNOWFLAKE_DATABASE"), ""),
        "SNOWFLAKE_PRIVATE_KEY_PATH": str(tmp_path / "key.p8"),
    }
    result = subprocess.run(
        [sys.executable, "-c", _LOAD_PROD_LOCATION],
        capture_output=True,
        text=True,
        env=environment,
        cwd=tmp_path,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert int(result.stdout.strip().splitlines()[-1]) > 0


def test_the_local_hot_store_names_the_missing_extra(tmp_path, monkeypatch):
    from coin_platform.storage.clickhouse import ChDBMissing, ClickHouseConfig, open_clickhouse

    monkeypatch.setitem(sys.modules, "chdb", None)
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *args: None if name == "chdb" else object())
    with pytest.raises(ChDBMissing, match=r"coin_platform\[local\]"):
        with open_clickhouse(ClickHouseConfig(mode="chdb", path=str(tmp_path / "hot"))):
            pass


def test_chdb_is_only_in_the_local_extra_and_the_image_installs_prod_only():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not [r for r in project["dependencies"] if "chdb" in r]
    assert [r for r in project["optional-dependencies"]["local"] if "chdb" in r]
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert '"/tmp/src[prod]"' in dockerfile and "[local" not in dockerfile


ENTRYPOINT = ROOT / "deploy" / "entrypoint.sh"


def _entrypoint_environment(tmp_path, **environment: str) -> subprocess.CompletedProcess:
    script = "import json, os; print(json.dumps(dict(os.environ)))"
    return subprocess.run(
        ["sh", str(ENTRYPOINT), sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"], **environment},
        cwd=tmp_path,
    )


def test_the_entrypoint_exports_the_secrets_dagster_reads_from_the_environment(tmp_path):
    import json

    (tmp_path / "postgres").write_text("pg-secret\n")
    (tmp_path / "unused").write_text("")
    result = _entrypoint_environment(
        tmp_path,
        DAGSTER_POSTGRES_PASSWORD_FILE=str(tmp_path / "postgres"),
        AWS_ACCESS_KEY_ID_FILE=str(tmp_path / "unused"),
        CLICKHOUSE_PASSWORD_FILE=str(tmp_path / "postgres"),
    )
    assert result.returncode == 0, result.stderr
    environment = json.loads(result.stdout)
    assert environment["DAGSTER_POSTGRES_PASSWORD"] == "pg-secret"
    # Exported ones lose their *_FILE (settings refuse both); an empty file leaves the variable unset.
    assert "DAGSTER_POSTGRES_PASSWORD_FILE" not in environment
    assert "AWS_ACCESS_KEY_ID" not in environment and "AWS_ACCESS_KEY_ID_FILE" not in environment
    # The platform's own secrets stay files, for coin_platform.settings to read.
    assert environment["CLICKHOUSE_PASSWORD_FILE"] == str(tmp_path / "postgres")
    assert "CLICKHOUSE_PASSWORD" not in environment


def test_the_entrypoint_stops_on_an_unreadable_secret_file(tmp_path):
    result = _entrypoint_environment(tmp_path, AWS_SECRET_ACCESS_KEY_FILE=str(tmp_path / "missing"))
    assert result.returncode == 1
    assert "AWS_SECRET_ACCESS_KEY_FILE names" in result.stderr and result.stdout == ""


def test_the_image_carries_dbt_and_its_parsed_manifest():
    """dbt-core and the adapters are project dependencies; the image parses the project at build time,
    so the code location starts without parsing (which for the prod target would want Snowflake)."""
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert "ENV COIN_DBT_PROJECT_DIR=/opt/coin_platform/dbt_snowflake" in dockerfile
    assert "COPY dbt_snowflake ./dbt_snowflake" in dockerfile
    assert "RUN dbt parse --quiet --project-dir dbt_snowflake --profiles-dir dbt_snowflake --target local" in dockerfile
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert {"dbt-core", "dbt-snowflake", "dagster-dbt"} <= {re.split(r"[<>=\[]", r)[0] for r in dependencies}


def test_dbt_prod_target_gets_every_variable_it_requires_from_compose():
    import yaml

    profile = yaml.safe_load((ROOT / "dbt_snowflake" / "profiles.yml").read_text())["coin_platform"]
    templates = " ".join(str(value) for value in profile["outputs"]["prod"].values())
    required = set(re.findall(r"env_var\('([A-Z_]+)'\)", templates))
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    environment = compose["services"]["code-location"]["environment"]
    assert required and sorted(required - set(environment)) == []
    # Key-pair only: the key is a mounted secret file, never a password.
    assert "private_key_path" in profile["outputs"]["prod"] and "password" not in profile["outputs"]["prod"]
    key_path = environment["SNOWFLAKE_PRIVATE_KEY_PATH"]
    assert key_path.removeprefix("/run/secrets/") in compose["services"]["code-location"]["secrets"]
