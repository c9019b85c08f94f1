"""deploy/helm/values.yaml, for Dagster's Helm chart: the same code location, secrets and limits as
the compose stack, with a pod per run. (The chart's values.schema.json is not shipped by any package
this project installs, so these tests hold the values to the compose stack and deploy/dagster.yaml.)"""

import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
VALUES = yaml.safe_load((ROOT / "deploy" / "helm" / "values.yaml").read_text())
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
INSTANCE = yaml.safe_load((ROOT / "deploy" / "dagster.yaml").read_text())
DEPLOYMENT = VALUES["dagster-user-deployments"]["deployments"][0]


def test_runs_are_pods_of_their_own():
    assert VALUES["runLauncher"]["type"] == "K8sRunLauncher"
    launcher = VALUES["runLauncher"]["config"]["k8sRunLauncher"]
    assert launcher["resources"]["limits"]
    assert DEPLOYMENT["includeConfigInLaunchedRuns"] == {"enabled": True}


def test_the_code_location_is_the_coin_image_at_the_project_version():
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert (DEPLOYMENT["image"]["repository"], DEPLOYMENT["image"]["tag"]) == ("coin-platform", version)
    assert DEPLOYMENT["codeServerArgs"][:2] == ["--module-name", "coin_platform.definitions"]


def test_the_code_location_reads_the_same_secret_files_as_in_compose():
    compose_environment = COMPOSE["services"]["code-location"]["environment"]
    in_compose = {name: value for name, value in compose_environment.items() if str(value).startswith("/run/secrets/")}
    in_helm = {name: value for name, value in DEPLOYMENT["env"].items() if str(value).startswith("/run/secrets/")}
    # The instance's own PostgreSQL password is the chart's secret in Kubernetes.
    in_compose.pop("DAGSTER_POSTGRES_PASSWORD_FILE")
    assert in_helm == in_compose
    mounts = {mount["mountPath"]: mount["name"] for mount in DEPLOYMENT["volumeMounts"]}
    secret_volume = next(volume for volume in DEPLOYMENT["volumes"] if volume["name"] == mounts["/run/secrets"])
    assert secret_volume["secret"]["secretName"] == "coin-platform-secrets"


def test_postgres_storage_uses_psycopg2_and_keeps_its_password_out_of_the_values():
    assert VALUES["postgresql"]["postgresqlScheme"] == "postgresql+psycopg2"
    assert "postgresqlPassword" not in VALUES["postgresql"]
    assert VALUES["generatePostgresqlPasswordSecret"] is False


def test_the_instance_limits_match_the_compose_instance():
    queued = VALUES["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    runs = INSTANCE["concurrency"]["runs"]
    assert queued["maxConcurrentRuns"] == runs["max_concurrent_runs"]
    assert queued["tagConcurrencyLimits"] == runs["tag_concurrency_limits"]
    assert VALUES["dagsterDaemon"]["sensors"] == {
        "useThreads": INSTANCE["sensors"]["use_threads"],
        "numWorkers": INSTANCE["sensors"]["num_workers"],
    }
    assert VALUES["additionalInstanceConfig"]["concurrency"]["pools"] == INSTANCE["concurrency"]["pools"]
    assert VALUES["computeLogManager"]["type"] == "S3ComputeLogManager"
