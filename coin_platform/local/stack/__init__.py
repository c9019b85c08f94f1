"""The local stack: SeaweedFS (S3) and tansu (Kafka) as background processes on loopback.

`coin stack up/down/status` and the pytest fixtures share this code, so the
tests exercise the same flags the developer runs. Every service listens on
127.0.0.1 only, on ports given explicitly, runs in its own session with its
output in a log file, and is stopped by PID: SIGTERM, a grace period, SIGKILL.
The CLI records PIDs in `<coin_home>/run/<name>.pid` so another shell can stop
what this one started. Process identity is read from /proc (Linux).

This package's root is the API `coin` and the fixtures use; each concern has its module:
ports (free ports, weed's port layout), processes (spawn, pid files, /proc identity, stop),
seaweedfs (command, S3 identity, security.toml, gRPC certificates), tansu, and replay
(the replay exchange's launcher).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from coin_platform.local.stack.ports import (
    GRPC_PORT_OFFSET,
    LOOPBACK,
    SeaweedPorts,
    free_port,
    port_is_free,
)
from coin_platform.local.stack.processes import STOP_TIMEOUT, ServiceProcess, StackError
from coin_platform.local.stack.replay import REPLAY_START_TIMEOUT, replay_answers, start_replay
from coin_platform.local.stack.seaweedfs import (
    DEFAULT_REGION,
    LOCAL_ACCESS_KEY,
    LOCAL_SECRET_KEY,
    PROBE_CONFIG,
    SEAWEEDFS_START_TIMEOUT,
    S3Endpoint,
    remove_weed_sockets,
    s3_answers,
    seaweedfs_command,
    seaweedfs_config_dir,
    start_seaweedfs,
    throwaway_seaweedfs,
    weed_binary,
)
from coin_platform.local.stack.tansu import (
    TANSU_BUCKET,
    TANSU_START_TIMEOUT,
    kafka_answers,
    start_tansu,
    tansu_binary,
)
from coin_platform.settings import Settings

__all__ = [
    "DEFAULT_REGION", "GRPC_PORT_OFFSET", "LOCAL_ACCESS_KEY", "LOCAL_SECRET_KEY", "LOOPBACK",
    "REPLAY_START_TIMEOUT", "SEAWEEDFS_START_TIMEOUT", "STOP_TIMEOUT", "TANSU_BUCKET",
    "TANSU_START_TIMEOUT", "LocalStack", "S3Endpoint", "SeaweedPorts", "ServiceProcess",
    "StackError", "free_port", "kafka_answers", "port_is_free", "remove_weed_sockets",
    "replay_answers", "seaweedfs_command", "seaweedfs_config_dir", "start_replay",
    "start_seaweedfs", "start_tansu", "tansu_binary", "throwaway_seaweedfs", "weed_binary",
]


@dataclass(frozen=True)
class _Managed:
    name: str
    executable: str
    address: str
    start: Callable[[], ServiceProcess]
    answers: Callable[[], bool]
    after_stop: Callable[[], None] = lambda: None


class LocalStack:
    """`coin stack up/down/status`: SeaweedFS, then tansu, then (MARKET_SOURCE=replay)
    the replay server, on the configured ports.

    State lives under coin_home: seaweedfs/ (data), logs/, run/ (pid files).
    """

    def __init__(self, settings: Settings) -> None:
        ports = settings.config.local_stack
        secret = settings.aws_secret_access_key
        self.seaweed_ports = SeaweedPorts(s3=ports.s3_port, master=ports.master_port,
                                          volume=ports.volume_port, filer=ports.filer_port)
        self.kafka_port = ports.kafka_port
        self.replay_port = ports.replay_port
        self.with_replay = settings.market_source == "replay"
        self.s3 = S3Endpoint.on_loopback(
            ports.s3_port,
            settings.aws_access_key_id or LOCAL_ACCESS_KEY,
            secret.get_secret_value() if secret else LOCAL_SECRET_KEY,
            settings.s3_region,
        )
        self.buckets = (settings.s3_bucket, TANSU_BUCKET)
        home = settings.coin_home.resolve()
        self.data_dir = home / "seaweedfs"
        self.log_dir = home / "logs"
        self.run_dir = home / "run"

    @property
    def s3_endpoint_url(self) -> str:
        return self.s3.endpoint_url

    @property
    def kafka_bootstrap_servers(self) -> str:
        return f"{LOOPBACK}:{self.kafka_port}"

    @property
    def replay_url(self) -> str:
        return f"http://{LOOPBACK}:{self.replay_port}"

    def up(self) -> list[str]:
        """Start whatever is not running yet; lines say what happened to each service."""
        with self._lock():
            return [self._up(service) for service in self._services(self.with_replay)]

    def down(self) -> list[str]:
        """Stop the services recorded in the pid files, tansu before SeaweedFS (it writes to S3)."""
        with self._lock():
            return [
                self._down(service)
                for service in reversed(self._services(True))
                if service.name != "replay" or self.with_replay or self._pid_file(service).exists()
            ]

    def status(self) -> tuple[list[str], bool]:
        """One line per service; healthy when every service runs and answers."""
        lines, healthy = [], True
        for service in self._services(self.with_replay):
            process = self._recorded(service)
            if process is None or not process.is_running():
                stale = f" (stale pid file for pid {process.pid})" if process else ""
                lines.append(f"{service.name}: stopped{stale}")
                healthy = False
            elif service.answers():
                lines.append(f"{service.name}: running (pid {process.pid}), "
                             f"answering at {service.address}")
            else:
                lines.append(f"{service.name}: running (pid {process.pid}) but NOT answering at "
                             f"{service.address}; see {process.log_file}")
                healthy = False
        return lines, healthy

    def _services(self, with_replay: bool) -> tuple[_Managed, ...]:
        seaweedfs = _Managed(
            name="seaweedfs", executable="weed", address=self.s3_endpoint_url,
            start=lambda: start_seaweedfs(
                data_dir=self.data_dir, log_dir=self.log_dir, ports=self.seaweed_ports,
                access_key=self.s3.access_key, secret_key=self.s3.secret_key,
                region=self.s3.region, buckets=self.buckets),
            answers=lambda: s3_answers(self.s3.client(PROBE_CONFIG)),
            after_stop=lambda: remove_weed_sockets(self.seaweed_ports),
        )
        tansu = _Managed(
            name="tansu", executable="tansu", address=self.kafka_bootstrap_servers,
            start=lambda: start_tansu(
                port=self.kafka_port, log_file=self.log_dir / "tansu.log",
                storage_url=f"s3://{TANSU_BUCKET}/", s3=self.s3),
            answers=lambda: kafka_answers(self.kafka_bootstrap_servers),
        )
        replay = _Managed(
            name="replay", executable=sys.executable, address=self.replay_url,
            start=lambda: start_replay(port=self.replay_port, log_file=self.log_dir / "replay.log"),
            answers=lambda: replay_answers(self.replay_url),
        )
        return (seaweedfs, tansu, replay) if with_replay else (seaweedfs, tansu)

    def _pid_file(self, service: _Managed) -> Path:
        return self.run_dir / f"{service.name}.pid"

    def _recorded(self, service: _Managed) -> ServiceProcess | None:
        """The process named by the pid file; check is_running() before trusting it."""
        try:
            pid = int(self._pid_file(service).read_text().strip())
        except (OSError, ValueError):
            return None
        return ServiceProcess(service.name, pid, service.executable,
                              self.log_dir / f"{service.name}.log")

    def _up(self, service: _Managed) -> str:
        process = self._recorded(service)
        if process is not None and process.is_running():
            return f"{service.name}: already running (pid {process.pid}) at {service.address}"
        started = time.monotonic()
        process = service.start()
        process.write_pid_file(self._pid_file(service))
        return (f"{service.name}: started (pid {process.pid}) at {service.address} in "
                f"{time.monotonic() - started:.1f} s; log {process.log_file}")

    def _down(self, service: _Managed) -> str:
        process = self._recorded(service)
        pid_file = self._pid_file(service)
        if process is None:
            return f"{service.name}: not running"
        if not process.is_running():
            pid_file.unlink()
            service.after_stop()
            return f"{service.name}: not running (removed stale pid file for pid {process.pid})"
        process.stop()
        pid_file.unlink()
        service.after_stop()
        return f"{service.name}: stopped (pid {process.pid})"

    def _lock(self) -> FileLock:
        """Serialises up/down between shells, so two `up`s cannot both start a service."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        return FileLock(self.run_dir / "stack.lock", timeout=120)
