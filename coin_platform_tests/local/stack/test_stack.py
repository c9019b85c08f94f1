"""`coin stack up/status/down` (LocalStack) against the real services: started, found again, stopped by PID."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import yaml
from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from coin_platform.local.stack import (
    LOOPBACK,
    TANSU_BUCKET,
    LocalStack,
    SeaweedPorts,
    ServiceProcess,
    StackError,
    free_port,
)
from coin_platform.settings import PROJECT_ROOT, Settings, load_settings


def _settings_on_free_ports(tmp_path: Path, **environ: str) -> Settings:
    """The project's config.yaml with every local_stack port moved to a free one."""
    config = yaml.safe_load((PROJECT_ROOT / "config.yaml").read_text())
    seaweed = SeaweedPorts.free()
    kafka_port = free_port(avoid=set(seaweed.all_ports().values()))
    config["local_stack"] = {
        "s3_port": seaweed.s3, "master_port": seaweed.master, "volume_port": seaweed.volume,
        "filer_port": seaweed.filer, "kafka_port": kafka_port,
        "replay_port": free_port(avoid={kafka_port, *seaweed.all_ports().values()}),
    }
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(config))
    return load_settings(environ={"COIN_HOME": str(tmp_path / ".coin"),
                                  "COIN_CONFIG": str(config_file), **environ})


def test_replay_mode_adds_the_replay_server_to_the_stack(tmp_path):
    settings = _settings_on_free_ports(tmp_path, MARKET_SOURCE="replay")
    stack = LocalStack(settings)
    try:
        started = stack.up()
        lines, healthy = stack.status()
        klines = requests.get(f"{stack.replay_url}/fapi/v1/klines",
                              params={"symbol": "BTCUSDT", "interval": "1h", "limit": 3}, timeout=5)
    finally:
        stopped = stack.down()
    assert [line.split(":")[0] for line in started] == ["seaweedfs", "tansu", "replay"]
    assert healthy and lines[2].startswith("replay: running")
    assert klines.status_code == 200 and len(klines.json()) == 3
    assert stopped[0].startswith("replay: stopped (pid ")
    assert not LocalStack(settings).status()[1]


def test_local_stack_up_is_idempotent_and_down_stops_by_pid(tmp_path):
    settings = _settings_on_free_ports(tmp_path)
    stack = LocalStack(settings)
    run_dir = settings.coin_home / "run"
    try:
        first = stack.up()
        again = stack.up()
        lines, healthy = stack.status()
        pids = {name: int((run_dir / f"{name}.pid").read_text()) for name in ("seaweedfs", "tansu")}
        s3 = stack.s3.client()
        buckets = {b["Name"] for b in s3.list_buckets()["Buckets"]}
        admin = KafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap_servers)
        try:
            admin.create_topics([NewTopic("candidates", num_partitions=1, replication_factor=1)])
        finally:
            admin.close()
        tansu_keys = [o["Key"] for o in s3.list_objects_v2(Bucket=TANSU_BUCKET)["Contents"]]
    finally:
        stopped = LocalStack(settings).down()  # a fresh instance, as from another shell

    assert [line.split(":")[0] for line in first] == ["seaweedfs", "tansu"]
    assert all("started" in line for line in first), first
    assert all("already running" in line for line in again), again
    assert healthy, lines
    assert stack.s3_endpoint_url in lines[0] and stack.kafka_bootstrap_servers in lines[1]
    assert buckets == {settings.s3_bucket, TANSU_BUCKET}
    assert any("/topics/candidates/" in key for key in tansu_keys), tansu_keys
    assert stopped == [f"tansu: stopped (pid {pids['tansu']})",
                       f"seaweedfs: stopped (pid {pids['seaweedfs']})"]
    assert not ServiceProcess("seaweedfs", pids["seaweedfs"], "weed", Path()).is_running()
    assert not ServiceProcess("tansu", pids["tansu"], "tansu", Path()).is_running()
    assert not list(run_dir.glob("*.pid"))
    weed_sockets = [socket_file for port in stack.seaweed_ports.all_ports().values()
                    for socket_file in Path("/tmp").glob(f"seaweedfs-*-{port}.sock")]
    assert not weed_sockets
    lines, healthy = stack.status()
    assert not healthy
    assert lines == ["seaweedfs: stopped", "tansu: stopped"]


def test_local_stack_names_the_port_that_is_taken(tmp_path):
    settings = _settings_on_free_ports(tmp_path)
    s3_port = settings.config.local_stack.s3_port
    with socket.socket() as squatter:
        squatter.bind((LOOPBACK, s3_port))
        squatter.listen()
        with pytest.raises(StackError, match=rf"127\.0\.0\.1:{s3_port} \(S3\) already in use"):
            LocalStack(settings).up()
    assert not list((settings.coin_home / "run").glob("*.pid"))


def test_local_stack_ignores_stale_pid_files(tmp_path):
    """A pid file whose process is gone, or is now another program, must not be trusted."""
    settings = _settings_on_free_ports(tmp_path)
    finished = subprocess.Popen([sys.executable, "-c", ""])
    finished.wait()
    exited_pid = finished.pid
    run_dir = settings.coin_home / "run"
    run_dir.mkdir(parents=True)
    (run_dir / "seaweedfs.pid").write_text(f"{os.getpid()}\n")  # alive, but not weed
    (run_dir / "tansu.pid").write_text(f"{exited_pid}\n")
    stack = LocalStack(settings)

    lines, healthy = stack.status()
    stopped = stack.down()

    assert not healthy
    assert lines == [f"seaweedfs: stopped (stale pid file for pid {os.getpid()})",
                     f"tansu: stopped (stale pid file for pid {exited_pid})"]
    assert stopped == [f"tansu: not running (removed stale pid file for pid {exited_pid})",
                       f"seaweedfs: not running (removed stale pid file for pid {os.getpid()})"]
    assert not list(run_dir.glob("*.pid"))
