"""The Dagster webserver launcher's stop and readiness logic, on small stand-in processes and a stand-in GraphQL
endpoint (the real webserver runs under it in coin_platform_tests/api/ and e2e/test_ui_backfill.py)."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from coin_platform.local.dagster_server import stop_group, wait_for_code_locations
from coin_platform.local.stack import LOOPBACK, StackError, free_port
from coin_platform.local.stack.processes import default_signal_handlers


def _in_own_session(script: str) -> subprocess.Popen:
    return subprocess.Popen(
        ["sh", "-c", script], start_new_session=True, preexec_fn=default_signal_handlers, stdin=subprocess.DEVNULL
    )


def _wait_for(path: Path, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.05)


def test_stop_group_stops_the_whole_group_and_kills_what_ignores_sigterm(tmp_path):
    ready = tmp_path / "ready"
    # The leader, a child that exits on SIGTERM and a grandchild (sleep) that inherits SIGTERM ignored.
    process = _in_own_session(f"sleep 30 & sh -c 'trap \"\" TERM; touch {ready}; sleep 30' & wait")
    _wait_for(ready)
    stop_group(process, grace=0.5)
    assert process.returncode is not None
    with pytest.raises(ProcessLookupError):  # no process of the group is left
        os.killpg(process.pid, 0)


def test_wait_for_code_locations_names_a_process_that_exited():
    process = _in_own_session("exit 3")
    process.wait()
    with pytest.raises(StackError, match=r"sh exited with 3:\nthe log's last lines"):
        wait_for_code_locations(f"http://{LOOPBACK}:{free_port()}", process, lambda: "the log's last lines")


@contextmanager
def _graphql_answering(entries: list[dict]) -> Iterator[str]:
    """A loopback endpoint answering every POST /graphql with `entries` as the workspace's location entries."""
    body = json.dumps({"data": {"workspaceOrError": {"locationEntries": entries}}}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{LOOPBACK}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _entry(name: str, status: str, error: str | None = None) -> dict:
    location = {"__typename": "PythonError", "message": error} if error else {"__typename": "RepositoryLocation"}
    return {"name": name, "loadStatus": status, "locationOrLoadError": location}


@pytest.fixture
def running() -> Iterator[subprocess.Popen]:
    process = _in_own_session("sleep 30")
    yield process
    stop_group(process, grace=1.0)


def test_wait_for_code_locations_returns_once_every_location_loaded(running):
    with _graphql_answering([_entry("coin_platform", "LOADED"), _entry("other", "LOADED")]) as url:
        wait_for_code_locations(url, running, lambda: "", timeout=10)


def test_wait_for_code_locations_fails_at_once_on_a_location_that_did_not_load(running):
    entries = [_entry("coin_platform", "LOADED", error="ImportError: no module named x"), _entry("ok", "LOADED")]
    with _graphql_answering(entries) as url, pytest.raises(StackError, match="coin_platform: ImportError: no module"):
        wait_for_code_locations(url, running, lambda: "", timeout=10)


def test_wait_for_code_locations_gives_up_after_its_timeout_with_the_log(running):
    with (
        _graphql_answering([_entry("coin_platform", "LOADING")]) as url,
        pytest.raises(StackError, match=r"did not load within 1 s:\nstill loading"),
    ):
        wait_for_code_locations(url, running, lambda: "still loading", timeout=1)
