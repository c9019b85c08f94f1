"""The replay exchange's launcher: `coin replay serve` as a background service."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import requests

from coin_platform.local.stack.ports import LOOPBACK, require_free
from coin_platform.local.stack.processes import ServiceProcess, start_service

REPLAY_START_TIMEOUT = 15.0


def replay_answers(url: str) -> bool:
    try:
        return requests.get(f"{url}/fapi/v1/ping", timeout=1).ok
    except requests.RequestException:
        return False


def start_replay(*, port: int, log_file: Path, weight_limit: int | None = None,
                 ban_seconds: float | None = None, faults: str | None = None,
                 symbols: tuple[str, ...] = (), funding_limit: int | None = None,
                 timeout: float = REPLAY_START_TIMEOUT,
                 ) -> ServiceProcess:
    """`coin replay serve` on 127.0.0.1:`port`, returned once it answers /fapi/v1/ping."""
    require_free("replay", {"HTTP": port}, "change local_stack.replay_port in config.yaml")
    command = [sys.executable, "-m", "coin_platform.local.cli", "replay", "serve",
               "--host", LOOPBACK, "--port", str(port)]
    for option, value in (("--weight-limit", weight_limit), ("--ban-seconds", ban_seconds),
                          ("--funding-limit", funding_limit), ("--faults", faults)):
        if value is not None:
            command += [option, str(value)]
    if symbols:
        command += ["--symbols", ",".join(symbols)]
    url = f"http://{LOOPBACK}:{port}"
    return start_service(
        "replay", command, log_file, dict(os.environ), lambda: replay_answers(url), f"GET {url}/fapi/v1/ping", timeout
    )
