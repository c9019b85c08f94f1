"""The `coin` command as a developer runs it: `python -m coin_platform.local.cli`, in its own process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from coin_platform.settings import PROJECT_ROOT


def coin(*args: str, home: Path, **environ: str) -> subprocess.CompletedProcess[str]:
    """`coin ARGS` with COIN_HOME=`home` and the project's config.yaml, unless `environ` says otherwise."""
    env = {**os.environ, "COIN_HOME": str(home), "COIN_CONFIG": str(PROJECT_ROOT / "config.yaml"),
           "MARKET_SOURCE": "binance", **environ}
    return subprocess.run([sys.executable, "-m", "coin_platform.local.cli", *args], env=env, cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("args", "commands"), [
    ((), {"api", "dev", "replay", "stack", "trace"}),
    (("stack",), {"up", "down", "status"}),
    (("replay",), {"serve"}),
])
def test_help_lists_the_commands(tmp_path, args, commands):
    result = coin(*args, "--help", home=tmp_path)
    assert result.returncode == 0, result.stderr
    listed = result.stdout.split("Commands:")[1].split()
    assert commands <= set(listed), result.stdout


def test_dev_help_offers_the_demo(tmp_path):
    result = coin("dev", "--help", home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "--demo" in result.stdout


@pytest.mark.parametrize(("market_source", "services"), [
    ("binance", ["seaweedfs", "tansu"]),
    ("replay", ["seaweedfs", "tansu", "replay"]),
])
def test_stack_status_with_nothing_running_says_so_and_fails(tmp_path, market_source, services):
    result = coin("stack", "status", home=tmp_path, MARKET_SOURCE=market_source)
    assert result.returncode == 1, result.stderr
    assert result.stdout.splitlines() == [f"{name}: stopped" for name in services]


def test_stack_down_with_nothing_running_stops_nothing(tmp_path):
    result = coin("stack", "down", home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["tansu: not running", "seaweedfs: not running"]
    assert not list((tmp_path / "run").glob("*.pid"))


def test_a_missing_config_file_is_a_one_line_error(tmp_path):
    missing = tmp_path / "nowhere.yaml"
    result = coin("stack", "status", home=tmp_path, COIN_CONFIG=str(missing))
    assert result.returncode == 1
    assert result.stderr.strip() == f"Error: config file not found: {missing}"
    assert "Traceback" not in result.stderr


def test_api_help_offers_host_and_port(tmp_path):
    result = coin("api", "--help", home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "--host" in result.stdout and "--port" in result.stdout


def test_the_api_in_prod_without_a_token_is_a_one_line_error(tmp_path):
    # Keys of its own: after `make dev` a .env with the example pair exists, which prod refuses before the token.
    keys = {"AWS_ACCESS_KEY_ID": "prod-test-key", "AWS_SECRET_ACCESS_KEY": "prod-test-secret-0123456789"}
    result = coin("api", home=tmp_path, COIN_PLATFORM_ENV="prod", API_TOKEN="", **keys)
    assert result.returncode == 1
    assert result.stderr.startswith("Error: API_TOKEN is not set: in prod")
    assert "Traceback" not in result.stderr
