"""`coin dev [--demo]`: the local stack, the HTTP API and the Dagster UI, started and stopped together.

The API (`coin api`) runs in the background like the stack's services and is stopped by PID. The
console says what starts, the demo's backfill progress and where the UI is; what the services, the
API, `dagster dev` and the runs log goes to COIN_HOME/logs (rotated). The demo runs offline: the
replay server joins the stack, the last days are backfilled before the UI opens (runs recorded in
the local instance, so the UI shows them), and the live schedules keep candles (and the funding
schedule funding rates) arriving.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import requests
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn

from coin_platform.core.progress import backfill_status
from coin_platform.local.dagster_server import wait_for_code_locations
from coin_platform.local.stack.ports import require_free
from coin_platform.local.stack.processes import (
    ServiceProcess,
    default_signal_handlers,
    rotated_output,
    start_service,
    wait_for_log,
)
from coin_platform.ops.logs import CODE_LOCATION_LOG, log_dir
from coin_platform.settings import PROJECT_ROOT, Settings

DAGSTER_STOP_TIMEOUT_S = 60
# The webserver answers once the code location has loaded: imports and the dbt manifest on 2 busy cores.
DAGSTER_START_TIMEOUT_S = 240
DAGSTER_LOG = "dagster.log"
# Dagster writes one "materialization planned" event per partition when it creates a run, each its own
# transaction: 3,300 for a backfill of 300 symbols × 11 years, and 300 for every live 1m run of the whole
# universe. With this, a run writes one per asset holding its partition range (bench/universe.py: that
# backfill's daemon tick, runs of 100, 45 s -> 13 s). The price: the asset page no longer marks a failed run's
# partitions failed (the backfill page and the run still do). docker-compose.yml and the Helm values set the same.
PLANNED_EVENTS_PER_RUN = {"DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "1"}
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
    included, none before the first day partition (the configured history_start, or day_partition_days back)."""
    today = today or dt.datetime.now(dt.UTC).date()
    return max(today - dt.timedelta(days=days - 1), settings.config.first_partition_day(today)), today


class BackfillProgress:
    """The demo's initial backfill on the console: a bar of the partitions done, candles per second, time left.

    `advance` after each run; a failed run is named above the bar and counted done (its partitions will
    not be retried by this backfill). Output that is not a terminal gets a line per run instead of the bar.
    """

    def __init__(self, total: int, console: Console | None = None, clock: Callable[[], float] = time.monotonic):
        if total <= 0:
            raise ValueError(f"a backfill needs at least one partition, got {total}")
        self.total, self.done, self.candles = total, 0, 0
        self._clock = clock
        self._started = clock()
        self._progress = Progress(
            TextColumn("{task.description:<14}"),
            BarColumn(bar_width=30),
            TextColumn("{task.fields[status]}"),
            console=console,
            auto_refresh=False,  # redrawn after each run: nothing on the line changes in between
        )
        self._task = self._progress.add_task("backfill", total=total, status=self.status())

    def status(self) -> str:
        return backfill_status(self.done, self.total, self.candles, self._clock() - self._started)

    def advance(self, what: str, partitions: int, candles: int, *, failed_run: str | None = None) -> None:
        self.done = min(self.total, self.done + partitions)
        self.candles += candles
        if failed_run is not None:
            self._progress.console.print(f"  {what}: FAILED, see run {failed_run} in the UI or the log files")
        status = self.status()
        self._progress.update(self._task, description=what, completed=self.done, status=status)
        if self._progress.console.is_terminal:
            self._progress.refresh()
        else:  # a log or a pipe gets no redrawn bar: one line per run
            self._progress.console.print(f"  {what}: {status}")

    def __enter__(self) -> BackfillProgress:
        self._progress.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._progress.stop()


# The console logger of a run executed in this process stays quiet: every record, errors with their stack
# traces included, goes to the log files (and the UI); the console names a failed run.
_QUIET_RUN = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def _ohlcv_rows(result, interval: str) -> int:
    """Candles a run stored in ohlcv_{interval} (a range run reports the same metadata for each partition)."""
    from coin_platform.defs.market.assets import market_op_name

    for materialization in result.asset_materializations_for_node(market_op_name(interval)):
        if materialization.asset_key.path == [f"ohlcv_{interval}"]:
            return int(materialization.metadata["dagster/row_count"].value)
    return 0


def backfill_recent_days(
    settings: Settings, days: int, echo: Callable[[str], None], console: Console | None = None
) -> bool:
    """Materialize the last `days` UTC days (today included) for every symbol, one run per interval and
    symbol (1m first, so the 15m/1h checks can compare) with a progress bar, one of the funding rates,
    then compact their years into the history archives. Runs log to COIN_HOME/logs, not the console."""
    import dagster as dg

    from coin_platform.definitions import build_definitions
    from coin_platform.defs.market.jobs import FUNDING_JOB
    from coin_platform.defs.partitions import partition_range_tags, year_range_tags

    defs = build_definitions(settings)
    first, today = backfill_window(settings, days)
    day_count = (today - first).days + 1
    symbols, intervals = settings.config.symbols, settings.config.intervals
    echo(f"backfilling {first}..{today} × {', '.join(symbols)} × {', '.join(intervals)} "
         f"(runs logged to {log_dir(settings.coin_home) / CODE_LOCATION_LOG})")
    succeeded = True
    with warnings.catch_warnings(), dg.DagsterInstance.get() as instance:
        warnings.simplefilter("ignore", dg.BetaWarning)  # dagster.yaml's log handlers are a beta feature
        with BackfillProgress(len(intervals) * len(symbols) * day_count, console) as progress:
            for interval in intervals:
                for symbol in symbols:
                    result = defs.resolve_job_def(f"ingest_{interval}").execute_in_process(
                        instance=instance, tags=partition_range_tags(first, today, symbol, symbol),
                        run_config=_QUIET_RUN, raise_on_error=False,
                    )
                    succeeded &= result.success
                    progress.advance(f"{interval} {symbol}", day_count, _ohlcv_rows(result, interval),
                                     failed_run=None if result.success else result.run_id)
        for what, job, tags in (
            ("funding rates", FUNDING_JOB, partition_range_tags(first, today, symbols[0], symbols[-1])),
            ("history archives", "compact_history", year_range_tags(first.year, today.year, symbols[0], symbols[-1])),
        ):
            result = defs.resolve_job_def(job).execute_in_process(
                instance=instance, tags=tags, run_config=_QUIET_RUN, raise_on_error=False
            )
            succeeded &= result.success
            failed = f"FAILED, see run {result.run_id} in the UI or the log files"
            echo(f"{what}: {'done' if result.success else failed}")
    return succeeded


def refresh_universe_snapshot(settings: Settings, echo: Callable[[str], None], *, if_missing: bool = False) -> None:
    """With `symbols: all`, write the universe snapshot from the exchange (or the replay server) once, before
    anything loads the definitions; with a symbol list there is nothing to do."""
    from coin_platform.pipeline.universe import refresh_settings_universe

    if not settings.config.symbols_from_exchange:
        echo("symbols are listed in config.yaml: no universe to refresh")
        return
    if if_missing and settings.universe_path.exists():
        echo(f"universe snapshot {settings.universe_path.name} exists")
        return
    universe, change = refresh_settings_universe(settings, dt.datetime.now(dt.UTC))
    echo(
        f"universe: {len(universe.live)} live, {len(universe.retired)} retired perpetuals "
        f"(added {len(change.added)}, retired {len(change.retired)}, back {len(change.returned)})"
    )


def api_url(settings: Settings) -> str:
    """Where `coin api` answers on this machine (a wildcard address is reached on loopback)."""
    host = settings.config.api.host
    return f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{settings.config.api.port}"


def _api_answers(url: str) -> bool:
    """GET /health answers with its report: 200 when all is well, 503 naming what is not (at `coin dev`'s start
    Dagster is not up yet, so 503 is the usual first answer)."""
    try:
        return requests.get(f"{url}/health", timeout=2).status_code in (200, 503)
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
    """`dagster dev` of this interpreter's environment, on loopback at local_stack.dagster_port, logging JSON."""
    dagster = Path(sys.executable).parent / "dagster"
    return [
        str(dagster), "dev",
        "-h", "127.0.0.1",
        "-p", str(settings.config.local_stack.dagster_port),
        "-w", str(PROJECT_ROOT / "workspace.yaml"),
        "--log-format", "json",
    ]


def _log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


def run_dagster_dev(settings: Settings, dagster_home: Path, log_file: Path, echo: Callable[[str], None]) -> int:
    """`dagster dev` until Ctrl-C, its output (the webserver's, the daemon's and the runs' console) in
    `log_file`, rotated; says where the UI is once the code location has loaded. Returns its exit code."""
    command = dagster_dev_command(settings)
    url = f"http://127.0.0.1:{settings.config.local_stack.dagster_port}"
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), **PLANNED_EVENTS_PER_RUN}
    # Run from DAGSTER_HOME: `dagster dev` loads a .env from its working directory over the
    # environment, which would undo `--demo`'s MARKET_SOURCE=replay; settings read .env anyway.
    # A script can hand down SIG_IGN for SIGINT; restore the defaults so Ctrl-C (sent to the
    # whole foreground process group) stops it.
    with rotated_output(log_file) as output:
        process = subprocess.Popen(
            command, env=env, cwd=dagster_home, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
            preexec_fn=default_signal_handlers,
        )
    try:
        wait_for_code_locations(url, process, lambda: _log_tail(log_file), DAGSTER_START_TIMEOUT_S)
        echo(f"Dagster UI on {url} (Ctrl-C stops the UI, the API and the stack; its log: {log_file})")
        return process.wait()
    except KeyboardInterrupt:
        try:
            return process.wait(timeout=DAGSTER_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.terminate()
            return process.wait()
    finally:
        if process.poll() is None:  # it never came up: stop it before the error goes up
            process.terminate()
            try:
                process.wait(timeout=DAGSTER_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        wait_for_log(log_file)
