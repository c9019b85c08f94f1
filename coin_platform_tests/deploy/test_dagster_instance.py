"""deploy/dagster.yaml, the prod instance: valid for Dagster's own config schema, wired to what
docker-compose.yml provides, and described truthfully by deploy/README.md."""

import re
import shutil
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
INSTANCE_FILE = ROOT / "deploy" / "dagster.yaml"
INSTANCE = yaml.safe_load(INSTANCE_FILE.read_text())
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
LOCAL_INSTANCE = yaml.safe_load((ROOT / "dagster.yaml").read_text())
# The environment the containers give Dagster; the values are examples, only their presence counts.
INSTANCE_ENVIRONMENT = {
    "DAGSTER_POSTGRES_USER": "dagster",
    "DAGSTER_POSTGRES_PASSWORD": "example",
    "DAGSTER_POSTGRES_DB": "dagster",
    "DAGSTER_POSTGRES_HOSTNAME": "postgres",
    "DAGSTER_CURRENT_IMAGE": "coin-platform:0.1.0",
    "S3_BUCKET": "coin-platform",
    "S3_ENDPOINT_URL": "http://seaweedfs:8333",
    "AWS_REGION": "us-east-1",
}


@pytest.fixture
def instance_environment(monkeypatch):
    for name, value in INSTANCE_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)


def test_dagster_accepts_the_instance_config(tmp_path, instance_environment):
    from dagster._core.instance.config import dagster_instance_config

    shutil.copy(INSTANCE_FILE, tmp_path / "dagster.yaml")
    config, custom_class = dagster_instance_config(str(tmp_path))
    assert custom_class is None
    assert set(config) >= {"storage", "run_coordinator", "run_launcher", "compute_logs", "sensors"}


@pytest.mark.parametrize("section", ["run_coordinator", "run_launcher", "compute_logs"])
def test_each_configured_class_accepts_its_config(instance_environment, section):
    """What the instance does on load: import the class and build it from its config section."""
    from dagster._serdes.config_class import ConfigurableClassData

    entry = INSTANCE[section]
    pytest.importorskip(entry["module"], reason=f"{entry['module']} (the prod extra) is not installed")
    data = ConfigurableClassData(entry["module"], entry["class"], yaml.safe_dump(entry.get("config") or {}))
    built = data.rehydrate(as_type=object)
    assert type(built).__name__ == entry["class"]


def test_runs_are_isolated_in_containers_on_the_compose_network():
    launcher = INSTANCE["run_launcher"]
    assert (launcher["module"], launcher["class"]) == ("dagster_docker", "DockerRunLauncher")
    assert launcher["config"]["network"] == COMPOSE["networks"]["default"]["name"]
    named_volumes = {volume.get("name") for volume in COMPOSE["volumes"].values() if volume}
    for mount in launcher["config"]["container_kwargs"]["volumes"]:
        assert mount.split(":")[0] in named_volumes, mount
    assert {"mem_limit", "nano_cpus", "log_config"} <= set(launcher["config"]["container_kwargs"])


def test_every_variable_a_run_container_takes_from_the_daemon_is_set_there():
    """A name without a value is copied from the daemon's environment, and a missing one fails the launch."""
    daemon_environment = SERVICES["dagster-daemon"]["environment"]
    copied = [name for name in INSTANCE["run_launcher"]["config"]["env_vars"] if "=" not in name]
    assert [name for name in copied if name not in daemon_environment] == []


def test_run_containers_get_the_code_locations_settings_and_secrets():
    """What the code location is given, a run of its code is given too (values, or the same secret paths)."""
    env_vars = INSTANCE["run_launcher"]["config"]["env_vars"]
    given = {entry.split("=", 1)[0]: entry.split("=", 1)[1] if "=" in entry else None for entry in env_vars}
    code_environment = SERVICES["code-location"]["environment"]
    missing = sorted(set(code_environment) - set(given))
    assert missing == []
    for name, value in given.items():
        if value is not None:
            assert code_environment[name] == value, name
    secrets_volume = COMPOSE["volumes"]["coin-secrets"]["name"]
    assert f"{secrets_volume}:/run/secrets:ro" in INSTANCE["run_launcher"]["config"]["container_kwargs"]["volumes"]
    assert set(SERVICES["secrets-init"]["secrets"]) >= {
        value.removeprefix("/run/secrets/") for value in given.values() if value
    }


def test_compute_logs_go_to_the_object_store():
    compute_logs = INSTANCE["compute_logs"]
    assert (compute_logs["module"], compute_logs["class"]) == (
        "dagster_aws.s3.compute_log_manager",
        "S3ComputeLogManager",
    )
    assert compute_logs["config"]["bucket"] == {"env": "S3_BUCKET"}


def test_sensors_tick_in_threads_as_locally():
    assert INSTANCE["sensors"] == LOCAL_INSTANCE["sensors"]
    assert INSTANCE["sensors"]["use_threads"] is True


def test_the_readme_states_the_instance_limits_as_configured():
    readme = (ROOT / "deploy" / "README.md").read_text()
    runs = INSTANCE["concurrency"]["runs"]
    stated = re.findall(r"at most\s+(\d+)\s+concurrent runs", readme)
    assert stated == [str(runs["max_concurrent_runs"])] * len(stated) and stated, "deploy/README.md: concurrent runs"
    backfill = next(limit for limit in runs["tag_concurrency_limits"] if limit["key"] == "dagster/backfill")
    assert re.search(rf"at most\s+{backfill['limit']}\s+backfill runs", readme), "deploy/README.md: backfill runs"
    pool = INSTANCE["concurrency"]["pools"]["default_limit"]
    assert re.search(rf"pool limit\s+{pool}\b", readme), "deploy/README.md: pool limit"


def test_every_process_that_creates_runs_writes_one_planned_event_per_asset_and_run():
    """`coin dev`, the compose webserver and daemon, and the Helm ones: the same setting (local/dev.py says why)."""
    from coin_platform.local.dev import PLANNED_EVENTS_PER_RUN

    values = yaml.safe_load((ROOT / "deploy" / "helm" / "values.yaml").read_text())
    for name, value in PLANNED_EVENTS_PER_RUN.items():
        for service in ("dagster-webserver", "dagster-daemon"):
            assert SERVICES[service]["environment"][name] == value, service
        for role in ("dagsterWebserver", "dagsterDaemon"):
            assert values[role]["env"][name] == value, role


@pytest.mark.parametrize("per_run", [True, False])
def test_a_ranged_run_writes_one_planned_event_with_the_setting_and_one_per_partition_without(
    tmp_path, monkeypatch, per_run
):
    import dagster as dg

    from coin_platform.local.dev import PLANNED_EVENTS_PER_RUN

    for name, value in PLANNED_EVENTS_PER_RUN.items():
        if per_run:
            monkeypatch.setenv(name, value)
        else:
            monkeypatch.delenv(name, raising=False)
    partitions = dg.MultiPartitionsDefinition(
        {
            "year": dg.StaticPartitionsDefinition(["2024", "2025"]),
            "symbol": dg.StaticPartitionsDefinition(["A", "B", "C"]),
        }
    )

    @dg.asset(partitions_def=partitions, backfill_policy=dg.BackfillPolicy.single_run())
    def history(context: dg.AssetExecutionContext) -> None:
        return None

    job = dg.Definitions(assets=[history], jobs=[dg.define_asset_job("j", [history])]).resolve_job_def("j")
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        job.execute_in_process(
            instance=instance,
            tags={"dagster/asset_partition_range_start": "A|2024", "dagster/asset_partition_range_end": "C|2025"},
        )
        planned = instance.get_records_for_run(
            run_id=instance.get_runs()[0].run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED
        ).records
    assert len(planned) == (1 if per_run else 6)
