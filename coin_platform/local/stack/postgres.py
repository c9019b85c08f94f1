"""Debian's PostgreSQL server on a free loopback port, in a directory of its own, stopped by PID.

The prod Dagster instance (deploy/dagster.yaml) keeps runs, event logs and schedules in PostgreSQL;
the tests (coin_platform_tests/fixtures/postgres.py) and bench/universe.py run a real server of the
version Debian ships (15), started with `initdb` + `postgres`. PostgreSQL refuses to run as root, so
under root (CI, the dev containers) the server runs as the `postgres` system user that Debian's package
creates.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg2

from coin_platform.local.stack.ports import LOOPBACK, free_port

SERVER_GLOB = "/usr/lib/postgresql/*/bin"
SERVER_USER = "postgres"
START_TIMEOUT_S = 30
STOP_TIMEOUT_S = 15


def server_bin_dir() -> Path:
    """The newest Debian PostgreSQL server installed (`make test` installs the `postgresql` package)."""
    candidates = [Path(d) for d in glob.glob(SERVER_GLOB) if (Path(d) / "postgres").exists()]
    if not candidates:
        raise RuntimeError(f"no PostgreSQL server under {SERVER_GLOB}: `make test` installs Debian's postgresql")
    return max(candidates, key=lambda d: int(d.parent.name))


@dataclass(frozen=True)
class PostgresServer:
    """A running server: where it listens and the superuser the tests connect as (password auth on TCP)."""

    host: str
    port: int
    user: str
    password: str
    log_file: Path

    def connect(self, database: str = "postgres"):
        return psycopg2.connect(
            host=self.host, port=self.port, user=self.user, password=self.password, dbname=database, connect_timeout=5
        )

    def create_database(self) -> str:
        """A new, empty database with a unique name, so tests never see each other's rows."""
        name = f"test_{uuid.uuid4().hex[:16]}"
        connection = self.connect()
        try:
            connection.autocommit = True  # CREATE DATABASE cannot run inside a transaction
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{name}"')
        finally:
            connection.close()
        return name

    def query(self, database: str, sql: str, parameters: tuple = ()) -> list[tuple]:
        """The rows of one statement, on a connection closed afterwards."""
        connection = self.connect(database)
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql, parameters)
                return cursor.fetchall()
        finally:
            connection.close()

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])


def _as_server_user() -> dict[str, object]:
    """Popen arguments that drop root to the `postgres` user; nothing to drop otherwise."""
    if os.geteuid() != 0:
        return {}
    account = pwd.getpwnam(SERVER_USER)
    return {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}


def _stop(process: subprocess.Popen) -> None:
    """Fast shutdown (SIGINT: roll back, disconnect, exit), SIGKILL if it does not exit in time."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


def _wait_until_ready(server: PostgresServer, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"postgres exited with {process.returncode}:\n{server.log_tail()}")
        try:
            server.connect().close()
            return
        except psycopg2.OperationalError:
            if time.monotonic() > deadline:
                message = f"postgres did not accept connections in {START_TIMEOUT_S} s:\n{server.log_tail()}"
                raise RuntimeError(message) from None
            time.sleep(0.1)


@contextmanager
def running_postgres(*, durable: bool) -> Iterator[PostgresServer]:
    """A fresh cluster in a temporary directory, removed on exit. Not `durable`: fsync and synchronous
    commits off, as a test cluster needs; durable: PostgreSQL's defaults, as production runs it."""
    bin_dir = server_bin_dir()
    # Not under pytest's tmp dir: that is private to root, and the server user must reach its cluster.
    root = Path(tempfile.mkdtemp(prefix="coin-postgres-"))
    data_dir, socket_dir, password_file = root / "data", root / "socket", root / "password"
    password = uuid.uuid4().hex
    password_file.write_text(password)
    socket_dir.mkdir()
    server_user = _as_server_user()
    if server_user:
        for path in (root, socket_dir, password_file):
            os.chown(path, server_user["user"], server_user["group"])
    user = "coin"
    server = PostgresServer(LOOPBACK, free_port(), user, password, root / "postgres.log")
    fast = [] if durable else ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
    process = None
    try:
        subprocess.run(
            [str(bin_dir / "initdb"), "-D", str(data_dir), "-U", user, f"--pwfile={password_file}",
             "--auth-host=scram-sha-256", "--auth-local=peer", "-E", "UTF8", "--locale=C"],
            check=True, capture_output=True, cwd=root, **server_user,
        )  # fmt: skip
        with server.log_file.open("wb") as log:
            process = subprocess.Popen(
                [str(bin_dir / "postgres"), "-D", str(data_dir), "-p", str(server.port), "-k", str(socket_dir),
                 "-h", server.host, *fast],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=root, **server_user,
            )  # fmt: skip
        _wait_until_ready(server, process)
        yield server
    except subprocess.CalledProcessError as error:
        raise RuntimeError(f"initdb failed: {error.stderr.decode(errors='replace')}") from error
    finally:
        if process is not None:
            _stop(process)
        shutil.rmtree(root, ignore_errors=True)
