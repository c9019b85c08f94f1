"""`coin dev [--demo]`: the local stack, the HTTP API and the Dagster UI, started and stopped together.

The API (`coin api`) runs in the background like the stack's services and is stopped by PID. The
demo runs offline: the replay server joins the stack, the last days are
backfilled before the UI opens (runs recorded in the local instance, so the UI
shows them), and the live schedules keep candles (and the funding schedule funding
rates) arriving.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import requests

from coin_platform.local.stack.ports import require_free
from coin_platform.local.stack.processes import ServiceProcess, default_signal_handlers, start_service
from coin_platform.settings import PROJECT_ROOT, Settings

DAGSTER_STOP_TIMEOUT_S = 60
# Importing FastAPI, pydantic and the GraphQL client takes a few seconds on a busy 2-core machine.
API_START_TIMEOUT_S = 60


def prepare_dagster_home(settings: Settings) -> Path:
    """DAGSTER_HOME under coin_home with the project's local dagster.yaml."""
    home = (settings.coin_home / "dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    return home


def backfill_window(settings: Settings, days: int, today: dt.date | None = None) -> tuple[dt.date, dt.date]:
    """The first and last UTC day `backfill_recent_days` materializes: the last `days` days, today
    included, none before the configured history_start."""
    today = today or dt.datetime.now(dt.UTC).date()
    return max(today - dt.timedelta(days=days - 1), settings.config.history_start), today


def backfill_recent_days(settings: Settings, days: int, echo: Callable[[str], None]) -> bool:
    """Materialize the last `days` UTC days (today included) for every symbol, one run per
    interval and one of the funding rates, then compact their years into the history archives."""
    import dagster as dg

    from coin_platform.definitions import build_definitions
    from coin_platform.defs.market.jobs import FUNDING_JOB
    from coin_platform.defs.partitions import partition_range_tags, year_range_tags

    defs = build_definitions(settings)
    first, today = backfill_window(settings, days)
    symbols = settings.config.symbols
    tags = partition_range_tags(first, today, symbols[0], symbols[-1])
    succeeded = True
    with dg.DagsterInstance.get() as instance:
        for interval in settings.config.intervals:  # 1m first, so 15m/1h checks can compare
            echo(f"backfilling {interval} for {first}..{today} × {', '.join(symbols)}")
            result = defs.resolve_job_def(f"ingest_{interval}").execute_in_process(
                instance=instance, tags=tags, raise_on_error=False
            )
            succeeded &= result.success
            echo(f"  {interval}: {'done' if result.success else 'FAILED (see the run in the UI)'}")
        echo(f"backfilling funding rates for {first}..{today} × {', '.join(symbols)}")
        result = defs.resolve_job_def(FUNDING_JOB).execute_in_process(
            instance=instance, tags=tags, raise_on_error=False
        )
        succeeded &= result.success
        echo(f"  funding: {'done' if result.success else 'FAILED (see the run in the UI)'}")
        echo(f"compacting the history archives of {first.year}..{today.year}")
        result = defs.resolve_job_def("compact_history").execute_in_process(
            instance=instance,
            tags=year_range_tags(first.year, today.year, symbols[0], symbols[-1]),
            raise_on_error=False,
        )
        succeeded &= result.success
        echo(f"  history: {'done' if result.success else 'FAILED (see the run in the UI)'}")
    return succeeded


def api_url(settings: Settings) -> str:
    """Where `coin api` answers on this machine (a wildcard address is reached on loopback)."""
    host = settings.config.api.host
    return f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{settings.config.api.port}"


def _api_answers(url: str) -> bool:
    try:
        return requests.get(f"{url}/health", timeout=2).ok
    except requests.RequestException:
        return False


def start_api(settings: Settings, log_file: Path) -> ServiceProcess:
    """`coin api` in the background (config.yaml `api:`), returned once GET /health answers."""
    require_free("the API", {"HTTP": settings.config.api.port}, "change api.port in config.yaml")
    command = [sys.executable, "-m", "coin_platform.local.cli", "api"]
    url = api_url(settings)
    return start_service(
        "api", command, log_file, dict(os.environ), lambda: _api_answers(url), f"GET {url}/health", API_START_TIMEOUT_S
    )


def dagster_dev_command(settings: Settings) -> list[str]:
    """`dagster dev` of this interpreter's environment, on loopback at local_stack.dagster_port."""
    dagster = Path(sys.executable).parent / "dagster"
    return [
        str(dagster), "dev",
        "-h", "127.0.0.1",
        "-p", str(settings.config.local_stack.dagster_port),
        "-w", str(PROJECT_ROOT / "workspace.yaml"),
    ]


def run_dagster_dev(settings: Settings, dagster_home: Path) -> int:
    """`dagster dev` in the foreground until Ctrl-C; returns its exit code."""
    command = dagster_dev_command(settings)
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home)}
    # Run from DAGSTER_HOME: `dagster dev` loads a .env from its working directory over the
    # environment, which would undo `--demo`'s MARKET_SOURCE=replay; settings read .env anyway.
    # A script can hand down SIG_IGN for SIGINT; restore the defaults so Ctrl-C (sent to the
    # whole foreground process group) stops it.
    process = subprocess.Popen(
        command, env=env, cwd=dagster_home, preexec_fn=default_signal_handlers
    )
    try:
        return process.wait()
    except KeyboardInterrupt:
        try:
            return process.wait(timeout=DAGSTER_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.terminate()
            return process.wait()
