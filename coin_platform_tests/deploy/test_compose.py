"""docker-compose.yml, the prod stack: valid for Docker Compose itself, and held to the rules an
operator relies on (pinned images, health-gated start, persistent state, secrets as files, limits,
rotated logs)."""

import importlib.util
import json
import os
import re
import shutil
import subprocess
import time
import tomllib
from pathlib import Path

import jsonschema
import pytest
import yaml

from coin_platform.settings import SECRET_VARIABLES

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
COMPOSE = yaml.safe_load(COMPOSE_FILE.read_text())
SERVICES: dict[str, dict] = COMPOSE["services"]
# Built from deploy/Dockerfile; the rest are upstream images.
COIN_SERVICES = {name for name, service in SERVICES.items() if "build" in service}
# Services that keep state, and where it lives in the container.
STATE_PATHS = {
    "postgres": "/var/lib/postgresql/data",
    "clickhouse": "/var/lib/clickhouse",
    "kafka": "/var/lib/kafka/data",
    "seaweedfs": "/data",
    "code-location": "/var/lib/coin_platform",
}
ONE_SHOT = {name for name, service in SERVICES.items() if service.get("restart") == "no"}


def _compose_plugin() -> list[str] | None:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    return None


def test_docker_compose_accepts_the_file(tmp_path):
    command = _compose_plugin()
    if command is None:
        pytest.skip("the docker CLI here has no compose plugin (the compose-spec schema test still runs)")
    # A copy beside no .env, so what is checked is the file and its defaults, not a developer's .env;
    # DOCKER_GID is the one variable without a default.
    copy = tmp_path / "docker-compose.yml"
    shutil.copy(COMPOSE_FILE, copy)
    environment = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "DOCKER_GID": "999"}
    result = subprocess.run(
        [*command, "-f", str(copy), "config", "-q"], capture_output=True, text=True, env=environment, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr


def _compose_spec_schema() -> dict:
    """The Compose Specification's JSON schema as check-jsonschema (dev extra, pinned) vendors it."""
    spec = importlib.util.find_spec("check_jsonschema")
    if spec is None or spec.origin is None:
        pytest.skip("check-jsonschema (dev extra), which ships the compose-spec schema, is not installed")
    return json.loads((Path(spec.origin).parent / "builtin_schemas" / "vendor" / "compose-spec.json").read_text())


def test_the_compose_spec_schema_accepts_the_file():
    schema = _compose_spec_schema()
    validator = jsonschema.validators.validator_for(schema)(schema, format_checker=jsonschema.FormatChecker())
    errors = [f"{'/'.join(map(str, error.absolute_path))}: {error.message}" for error in validator.iter_errors(COMPOSE)]
    assert errors == []
    # The schema is strict where it matters: a misspelt healthcheck key is an error.
    misspelt = yaml.safe_load(COMPOSE_FILE.read_text())
    misspelt["services"]["postgres"]["healthcheck"]["retry"] = 3
    assert list(validator.iter_errors(misspelt))


@pytest.mark.parametrize("name", sorted(set(SERVICES) - COIN_SERVICES))
def test_every_upstream_image_is_pinned_to_a_release(name):
    image = SERVICES[name]["image"]
    repository, _, tag = image.rpartition(":")
    assert repository and "/" not in tag, f"{name}: {image} names no tag"
    assert tag != "latest" and re.fullmatch(r"v?\d+(\.\d+)+", tag), f"{name}: {image} is not a release tag"
    assert "$" not in image, f"{name}: the image must not come from the environment"


def test_the_coin_image_defaults_to_the_project_version():
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    for name in COIN_SERVICES:
        assert SERVICES[name]["image"] == f"coin-platform:${{COIN_IMAGE_TAG:-{version}}}", name
    assert SERVICES["code-location"]["environment"]["DAGSTER_CURRENT_IMAGE"] == SERVICES["code-location"]["image"]


def test_minio_is_gone():
    assert "minio" not in COMPOSE_FILE.read_text().lower()


@pytest.mark.parametrize("name", sorted(set(SERVICES) - ONE_SHOT))
def test_every_long_running_service_has_a_healthcheck_and_restarts(name):
    service = SERVICES[name]
    assert service["healthcheck"]["test"], name
    assert service["restart"] == "unless-stopped", name


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_dependency_waits_for_health_or_success(name):
    for dependency, condition in SERVICES[name].get("depends_on", {}).items():
        expected = "service_completed_successfully" if dependency in ONE_SHOT else "service_healthy"
        assert condition == {"condition": expected}, f"{name} -> {dependency}"


@pytest.mark.parametrize(("name", "path"), sorted(STATE_PATHS.items()))
def test_every_stateful_service_keeps_its_state_on_a_named_volume(name, path):
    named = set(COMPOSE["volumes"])
    mounts = {volume.split(":")[1]: volume.split(":")[0] for volume in SERVICES[name]["volumes"]}
    assert mounts.get(path) in named, f"{name}: {path} is not on a named volume"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_service_has_limits_and_rotated_logs(name):
    service = SERVICES[name]
    limits = service["deploy"]["resources"]["limits"]
    assert float(limits["cpus"]) > 0 and re.fullmatch(r"\d+[mg]", limits["memory"]), name
    assert service["logging"]["driver"] == "json-file", name
    assert {"max-size", "max-file"} <= set(service["logging"]["options"]), name


def _environment_items():
    for name, service in SERVICES.items():
        environment = service.get("environment") or {}
        for variable, value in environment.items():
            yield name, variable, value


def test_no_secret_passes_through_the_environment():
    """Secrets reach containers as files; the environment only names them."""
    secret_names = set(SECRET_VARIABLES) | {"POSTGRES_PASSWORD", "DAGSTER_POSTGRES_PASSWORD"}
    leaks = [f"{service}:{variable}" for service, variable, _ in _environment_items() if variable in secret_names]
    assert leaks == []


def test_every_secret_file_a_service_names_is_mounted_into_it():
    declared = set(COMPOSE["secrets"])
    for name, service in SERVICES.items():
        mounted = set(service.get("secrets", []))
        assert mounted <= declared, name
        for variable, value in (service.get("environment") or {}).items():
            if str(value).startswith("/run/secrets/"):
                assert str(value).removeprefix("/run/secrets/") in mounted, f"{name}:{variable}"
    for secret in COMPOSE["secrets"].values():
        assert secret["file"].startswith("./deploy/secrets/")


def test_secret_files_stay_out_of_git_and_the_image():
    assert "deploy/secrets/" in (ROOT / ".gitignore").read_text().splitlines()
    assert "deploy/secrets/" in (ROOT / ".dockerignore").read_text().splitlines()


def test_published_ports_bind_to_loopback_only():
    for name, service in SERVICES.items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name}: {port}"


def test_the_seaweedfs_command_serves_the_platform_identity_only(tmp_path):
    """The compose service's own script, run by this machine's `weed` of the same release: the identity
    file it writes from the two secret files (a secret with a quote and a backslash) is what S3 accepts."""
    import requests

    from coin_platform.local.stack.ports import LOOPBACK, SeaweedPorts
    from coin_platform.local.stack.seaweedfs import S3Endpoint, remove_weed_sockets, weed_binary

    service = SERVICES["seaweedfs"]
    weed = weed_binary()
    version = subprocess.run([weed, "version"], capture_output=True, text=True).stdout
    assert service["image"].rpartition(":")[2] in version.split(), f"compose pins {service['image']}, here: {version}"
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "aws_access_key_id").write_text("coin-prod\n")
    (secrets / "aws_secret_access_key").write_text('a"secret\\with-odd-characters\n')
    ports = SeaweedPorts.free()
    # What compose hands the container's shell ($$ is a literal $), with the container's paths moved here.
    script = (
        service["command"][0]
        .replace("$$", "$")
        .replace("/run/secrets/", f"{secrets}/")
        .replace("/tmp/s3-identity.json", str(tmp_path / "s3-identity.json"))
        .replace("exec /entrypoint.sh mini", f"exec {weed} mini")
        .replace("-dir=/data", f"-dir={tmp_path / 'data'}")
        .replace("-ip=seaweedfs -ip.bind=0.0.0.0", f"-ip={LOOPBACK} -ip.bind={LOOPBACK}")
        .replace("-master.telemetry=false", "-master.telemetry=false " + " ".join(ports.flags()))
    )
    (tmp_path / "data").mkdir()
    # ${S3_BUCKET:-coin-platform} as compose interpolates it without a .env.
    bucket = re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", service["environment"]["S3_BUCKET"])
    environment = {"PATH": os.environ["PATH"], "S3_BUCKET": bucket}
    with (tmp_path / "weed.log").open("w") as log:
        process = subprocess.Popen(["sh", "-c", script], env=environment, cwd=tmp_path, stdout=log, stderr=log)
    endpoint = S3Endpoint.on_loopback(ports.s3, "coin-prod", 'a"secret\\with-odd-characters')
    try:
        client = endpoint.client()
        for _ in range(120):
            assert process.poll() is None, (tmp_path / "weed.log").read_text()[-2000:]
            try:
                buckets = [bucket["Name"] for bucket in client.list_buckets()["Buckets"]]
            except Exception:  # not up yet
                buckets = []
            if buckets:  # weed creates the bucket just after S3 starts answering
                break
            time.sleep(0.5)
        assert buckets == [bucket], "no bucket within 60 s of signed requests"
        assert requests.get(f"{endpoint.endpoint_url}/", timeout=5).status_code == 403
        assert requests.get(f"{endpoint.endpoint_url}/healthz", timeout=5).status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=30)
        remove_weed_sockets(ports)


def test_only_the_run_launching_services_reach_the_docker_socket():
    """The socket is root on the host: the daemon starts run containers, the webserver stops them."""
    with_socket = {
        name
        for name, service in SERVICES.items()
        if any(volume.startswith("/var/run/docker.sock:") for volume in service.get("volumes", []))
    }
    assert with_socket == {"dagster-daemon", "dagster-webserver"}
    for name in with_socket:
        assert SERVICES[name]["group_add"] == [
            "${DOCKER_GID:?set DOCKER_GID in .env to the host's docker group id (getent group docker)}"
        ]
