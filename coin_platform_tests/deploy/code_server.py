"""`dagster code-server start` as deploy/Dockerfile runs it, on a free loopback port, in its own session.

Runs launched by the DefaultRunLauncher execute as subprocesses of it, so SIGKILL of its process group
is what recreating the code-location container does to them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from dagster._core.workspace.load_target import GrpcServerTarget
from dagster._grpc.client import DagsterGrpcClient

from coin_platform.local.dagster_server import start_dagster_process, stop_group
from coin_platform.local.stack import LOOPBACK, free_port

LOAD_TIMEOUT_S = 120


@dataclass
class CodeServer:
    process: subprocess.Popen
    port: int
    location_name: str
    log_file: Path

    def target(self) -> GrpcServerTarget:
        return GrpcServerTarget(host=LOOPBACK, port=self.port, socket=None, location_name=self.location_name)

    def kill(self) -> None:
        """SIGKILL the server and every run process under it, as a killed container would be."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])


def _wait_until_loaded(server: CodeServer) -> None:
    client = DagsterGrpcClient(port=server.port, host=LOOPBACK)
    deadline = time.monotonic() + LOAD_TIMEOUT_S
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(f"the code server exited with {server.process.returncode}:\n{server.log_tail()}")
        try:
            client.list_repositories()
            return
        except Exception as error:  # not listening yet, or still loading the definitions
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the code server did not load in {LOAD_TIMEOUT_S} s:\n{server.log_tail()}"
                ) from error
            time.sleep(0.5)


@contextmanager
def code_server(
    target: list[str], location_name: str, home: Path, env: Mapping[str, str], port: int | None = None
) -> Iterator[CodeServer]:
    """Serve `target` (e.g. ["-m", "coin_platform.definitions"]) with DAGSTER_HOME=`home`, `env` on top of ours."""
    port = port or free_port()
    log_file = home / f"code-server-{port}.log"
    command = [str(Path(sys.executable).parent / "dagster"), "code-server", "start", "-h", LOOPBACK, "-p", str(port),
               *target, "--location-name", location_name]  # fmt: skip
    with log_file.open("ab") as log:
        process = start_dagster_process(command, home, env, log)
    server = CodeServer(process, port, location_name, log_file)
    try:
        _wait_until_loaded(server)
        yield server
    finally:
        if process.poll() is None:
            stop_group(process, grace=10)
        else:
            process.wait()
