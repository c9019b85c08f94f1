"""One map from deployment to resources decides everything deployment-specific, the dbt target too."""

import re
import socket

import jinja2
import pytest
import yaml

from coin_platform.definitions import build_definitions
from coin_platform.defs.resources import DBT_PROJECT_DIR, RESOURCES, ClickHouseResource, build_resources
from coin_platform.settings import DEPLOYMENTS, PROJECT_ROOT, load_settings

ADAPTER_BY_DEPLOYMENT = {"local": "duckdb", "prod": "snowflake"}


def _settings(tmp_path, env: str):
    return load_settings(
        {"COIN_CONFIG": str(PROJECT_ROOT / "config.yaml"), "COIN_HOME": str(tmp_path), "COIN_PLATFORM_ENV": env}
    )


def _rendered_profile(environ: dict[str, str]) -> dict:
    """profiles.yml as dbt sees it: every string rendered as Jinja with env_var from `environ`."""

    def env_var(name: str, default: str | None = None) -> str:
        if name in environ:
            return environ[name]
        if default is None:
            raise KeyError(name)
        return default

    def render(value):
        if isinstance(value, dict):
            return {k: render(v) for k, v in value.items()}
        if isinstance(value, str):
            return jinja2.Template(value).render(env_var=env_var)
        return value

    profile = yaml.safe_load((DBT_PROJECT_DIR / "profiles.yml").read_text())["coin_platform"]
    # Outputs other than the target need not render (prod's variables are unset locally).
    return {"target": render(profile["target"]), "outputs": profile["outputs"]}


def test_the_map_has_one_entry_per_allowed_deployment():
    assert set(RESOURCES) == set(DEPLOYMENTS) == {"local", "prod"}


@pytest.mark.parametrize("env", DEPLOYMENTS)
def test_every_deployment_offers_the_same_resource_keys(tmp_path, env):
    assert set(build_resources(_settings(tmp_path, env))) == set(build_resources(_settings(tmp_path, "local")))


@pytest.mark.parametrize("env", DEPLOYMENTS)
def test_the_dbt_target_follows_the_same_switch(tmp_path, env):
    dbt = build_resources(_settings(tmp_path, env))["dbt"]
    profile = _rendered_profile({"COIN_PLATFORM_ENV": env})
    assert dbt.target == profile["target"] == env
    assert profile["outputs"][dbt.target]["type"] == ADAPTER_BY_DEPLOYMENT[env]
    assert dbt.project_dir == dbt.profiles_dir == str(DBT_PROJECT_DIR)
    assert set(profile["outputs"]) == set(DEPLOYMENTS)


def test_dbt_run_by_hand_defaults_to_the_local_target():
    assert _rendered_profile({})["target"] == "local"


def test_prod_builds_server_clickhouse_without_touching_the_network(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError(f"network touched: {args}")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    settings = _settings(tmp_path, "prod")
    resources = build_resources(settings)
    clickhouse = resources["clickhouse"]
    assert isinstance(clickhouse, ClickHouseResource) and clickhouse.mode == "server" and clickhouse.path is None
    assert resources["dbt"].target == "prod"
    local = build_resources(_settings(tmp_path, "local"))["clickhouse"]
    assert local.mode == "chdb" and local.path == str(tmp_path / "clickhouse" / "hot")
    # The whole code location loads for prod, still without a connection.
    defs = build_definitions(settings)
    assert defs.resources["clickhouse"].mode == "server"


def test_only_settings_and_resources_read_the_deployment():
    """Assets, jobs and domain code never branch on the deployment: resources do."""
    allowed = {PROJECT_ROOT / "coin_platform" / "settings.py", PROJECT_ROOT / "coin_platform" / "defs" / "resources.py"}
    pattern = re.compile(r"\w\.env\b(?![/.(])|COIN_PLATFORM_ENV")
    readers = [
        str(path.relative_to(PROJECT_ROOT))
        for path in (PROJECT_ROOT / "coin_platform").rglob("*.py")
        if path not in allowed and pattern.search(path.read_text(encoding="utf-8"))
    ]
    assert readers == []


def test_two_opens_of_the_clickhouse_resource_migrate_once(tmp_path, monkeypatch):
    """The resource hands out a HotStore; a process migrates its target on the first open only."""
    from coin_platform.storage import clickhouse as hot

    runs = []
    real_migrate = hot.migrate
    monkeypatch.setattr(hot, "migrate", lambda *args, **kwargs: runs.append(args[1:]) or real_migrate(*args, **kwargs))
    resource = ClickHouseResource(mode="chdb", path=str(tmp_path / "hot"), retention_days=2)
    with resource.open() as store:
        assert isinstance(store, hot.HotStore) and store.migrations_applied == [1, 2, 3, 4, 5, 6]
    with resource.open() as store:
        assert store.migrations_applied == [] and store.ttl_days("features_1h") == 2
    assert runs == [(2, "coin")]
