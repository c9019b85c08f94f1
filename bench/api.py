"""HTTP API benchmark: POST /api/backtests/run-async latency, and one backtest from request to completed.

Everything runs as `make dev` runs it, on free loopback ports in a temporary COIN_HOME: SeaweedFS
holding a seeded random walk of `--days` closed days (up to yesterday) of `--interval` candles per
symbol as the yearly archives, the project's code location under the Dagster webserver with the
project's dagster.yaml (run queue dequeued every second), and `coin api` started by `coin dev`'s
own start_api, asked over HTTP.

1. run-async: `--requests` launches one after another (a one-day backtest each), while no daemon
   runs, so every run stays queued; then they are cancelled. Reported: p50, p95, max in ms.
2. A backtest of the whole range (`--strategy`, no funding data) with the daemon started: request
   → the status poll (every 0.5 s) that first answers completed. Split by Dagster's run record:
   request → run created (the API and the launch mutation), run created → RUN_START (the run
   launch: queue, then a process that loads the code location), the run itself, and the wait
   for the next poll. Reported with the launch's share of the whole.

Only the JSON goes to stdout; progress to stderr.

    python bench/api.py                                          # 50 requests; a year of 1m candles
    python bench/api.py --requests 5 --days 3 --interval 15m     # a quick check of the bench itself
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import numpy as np
import polars as pl
import requests
import yaml
from candles import random_walk_candles  # bench/candles.py, beside this script
from report import emit  # bench/report.py, beside this script

from coin_platform.client import BacktestClient
from coin_platform.local.dagster_server import DISPOSABLE_STOP_GRACE_S, dagster_webserver, stop_group
from coin_platform.local.dev import api_url, prepare_dagster_home, start_api
from coin_platform.local.stack import (
    DEFAULT_REGION,
    LOCAL_ACCESS_KEY,
    LOCAL_SECRET_KEY,
    LOOPBACK,
    SeaweedPorts,
    free_port,
    remove_weed_sockets,
    start_seaweedfs,
)
from coin_platform.market.klines import OHLCV_SCHEMA
from coin_platform.settings import PROJECT_ROOT, Settings, load_settings
from coin_platform.storage.archive import day_versions, to_history, write_archive
from coin_platform.storage.layout import day_start
from coin_platform.storage.object_store import ObjectStore

BUCKET = "coin-platform"
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT")
STEP = {"1m": dt.timedelta(minutes=1), "15m": dt.timedelta(minutes=15), "1h": dt.timedelta(hours=1)}
POLL_S = 0.5
DAEMON_START_TIMEOUT_S = 120
REQUEST_TIMEOUT_S = 60

_T0 = time.monotonic()


class BenchError(RuntimeError):
    """The bench could not run; the message says what failed."""


def log(message: str) -> None:
    print(f"[api +{time.monotonic() - _T0:6.1f}s] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50, help="run-async requests timed (at least 1)")
    parser.add_argument("--days", type=int, default=365, help="closed days of candles up to yesterday")
    parser.add_argument("--interval", choices=sorted(STEP), default="1m")
    parser.add_argument("--symbols", type=int, default=1, help=f"the first M of {', '.join(SYMBOLS)}")
    parser.add_argument(
        "--strategy", choices=["ema_crossover", "rsi_reversal", "macd_crossover"], default="ema_crossover"
    )
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds the backtest may take")
    parser.add_argument("--json-out", type=Path, help="also write the JSON result to this file")
    args = parser.parse_args(argv)
    if args.requests < 1 or args.days < 1 or args.timeout <= 0:
        parser.error("--requests, --days and --timeout must be positive")
    if not 1 <= args.symbols <= len(SYMBOLS):
        parser.error(f"--symbols must be within 1..{len(SYMBOLS)}")
    return args


def spread_ms(seconds: list[float]) -> dict[str, float | int]:
    """n, p50, p95 and max in milliseconds (percentiles interpolated between closest ranks)."""
    ms = sorted(1000 * value for value in seconds)
    cuts = statistics.quantiles(ms, n=100, method="inclusive") if len(ms) > 1 else [ms[0]] * 99
    return {"n": len(ms), "p50": round(cuts[49], 2), "p95": round(cuts[94], 2), "max": round(ms[-1], 2)}


def random_walk(interval: str, first: dt.date, last: dt.date, seed: int) -> pl.DataFrame:
    """Cleaned OHLCV rows of first..last: bench/candles.py's seeded random walk, one candle per `interval`,
    with the kline's other fields drawn from the same seed."""
    step = STEP[interval]
    rows = int((day_start(last + dt.timedelta(days=1)) - day_start(first)) / step)
    rng = np.random.default_rng((seed, 1))  # a stream apart from the walk's
    return (
        random_walk_candles(rows, seed, start=day_start(first), step=step)
        .with_columns(
            quote_volume=rng.uniform(100, 5000, rows),
            trades=rng.integers(1, 100, rows),
            taker_buy_volume=rng.uniform(0, 1, rows),
            taker_buy_quote_volume=rng.uniform(0, 100, rows),
        )
        .select(pl.col(name).cast(dtype) for name, dtype in OHLCV_SCHEMA.items())
    )


def store_candles(store: ObjectStore, symbols: tuple[str, ...], interval: str, first: dt.date, last: dt.date) -> int:
    """The candles as the compaction leaves them: one archive per symbol and year, compacted through `last`."""
    stored = 0
    for seed, symbol in enumerate(symbols):
        candles = random_walk(interval, first, last, seed)
        for year in range(first.year, last.year + 1):
            days = (max(first, dt.date(year, 1, 1)), min(last, dt.date(year, 12, 31)))
            rows = candles.filter(pl.col("open_time").dt.year() == year)
            write_archive(
                store, interval, symbol, year, to_history(rows, symbol, interval), days[1], day_versions(rows, *days)
            )
        stored += candles.height
    return stored


def bench_environ(home: Path, config: Path, s3_port: int) -> dict[str, str]:
    """Everything the settings read, explicit, so neither the caller's shell nor .env can redirect the bench."""
    return {
        "COIN_PLATFORM_ENV": "local",
        "COIN_CONFIG": str(config),
        "COIN_HOME": str(home),
        "MARKET_SOURCE": "replay",
        "S3_ENDPOINT_URL": f"http://{LOOPBACK}:{s3_port}",
        "S3_BUCKET": BUCKET,
        "AWS_REGION": DEFAULT_REGION,
        "AWS_ACCESS_KEY_ID": LOCAL_ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": LOCAL_SECRET_KEY,
        "API_TOKEN": "",
    }


@contextmanager
def seaweedfs(home: Path) -> Iterator[int]:
    ports = SeaweedPorts.free()
    process = start_seaweedfs(
        data_dir=home / "seaweedfs",
        log_dir=home / "logs",
        ports=ports,
        access_key=LOCAL_ACCESS_KEY,
        secret_key=LOCAL_SECRET_KEY,
        buckets=(BUCKET,),
    )
    try:
        yield ports.s3
    finally:
        process.stop()
        remove_weed_sockets(ports)


@contextmanager
def daemon(home: Path, webserver_url: str, log_file: Path) -> Iterator[None]:
    """`dagster-daemon run` on the webserver's instance (the pair is what `dagster dev` runs), ready once its
    run queue coordinator beats, so the backtest's launch is not charged the daemon's start."""
    command = [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(PROJECT_ROOT / "workspace.yaml")]
    with log_file.open("ab") as out:
        process = subprocess.Popen(
            command,
            env={**os.environ, "DAGSTER_HOME": str(home)},
            cwd=home,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    query = '{ instance { daemonHealth { daemonStatus(daemonType: "QUEUED_RUN_COORDINATOR") { healthy } } } }'
    try:
        deadline = time.monotonic() + DAEMON_START_TIMEOUT_S
        while not _healthy(requests.post(f"{webserver_url}/graphql", json={"query": query}, timeout=10).json()):
            if process.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"the daemon did not beat within {DAEMON_START_TIMEOUT_S} s; see {log_file}")
            time.sleep(1)
        yield
    finally:
        stop_group(process, grace=DISPOSABLE_STOP_GRACE_S)


def _healthy(answer: dict) -> bool:
    return bool(answer["data"]["instance"]["daemonHealth"]["daemonStatus"]["healthy"])


def time_run_async(url: str, body: dict, count: int) -> tuple[list[float], list[str]]:
    """`count` launches one after another; the seconds each took and the task ids."""
    seconds, task_ids = [], []
    with requests.Session() as session:
        for _ in range(count):
            started = time.perf_counter()
            response = session.post(f"{url}/api/backtests/run-async", json=body, timeout=REQUEST_TIMEOUT_S)
            seconds.append(time.perf_counter() - started)
            if response.status_code != 202:
                raise BenchError(f"run-async answered {response.status_code}: {response.text[:300]}")
            task_ids.append(response.json()["task_id"])
    return seconds, task_ids


def cancel_queued(dagster_url: str, task_ids: list[str]) -> None:
    """The timed launches are no backtests to run: cancel them before the daemon would dequeue them."""
    from dagster_graphql import DagsterGraphQLClient

    dagster = DagsterGraphQLClient(LOOPBACK, port_number=int(dagster_url.rsplit(":", 1)[1]))
    dagster.terminate_runs(task_ids)
    client = BacktestClient(dagster_url)
    if left := [task_id for task_id in task_ids if client.status(task_id).status != "failed"]:
        raise BenchError(f"{len(left)} timed launches are still queued after cancelling them")


def backtest_wall_time(url: str, dagster_url: str, body: dict, timeout: float) -> dict[str, object]:
    """One backtest from the request to the poll that answers completed, split by the run record."""
    requested = dt.datetime.now(dt.UTC)
    started = time.monotonic()
    response = requests.post(f"{url}/api/backtests/run-async", json=body, timeout=REQUEST_TIMEOUT_S)
    if response.status_code != 202:
        raise BenchError(f"run-async answered {response.status_code}: {response.text[:300]}")
    task_id = response.json()["task_id"]
    while True:
        status = requests.get(f"{url}/api/backtests/status/{task_id}", timeout=REQUEST_TIMEOUT_S).json()
        if status["status"] in ("completed", "failed"):
            break
        if time.monotonic() - started > timeout:
            raise BenchError(f"the backtest {task_id} is still {status['status']} after {timeout:.0f} s")
        time.sleep(POLL_S)
    wall = time.monotonic() - started
    if status["status"] != "completed":
        raise BenchError(f"the backtest {task_id} failed: {status['error']}")
    run = BacktestClient(dagster_url).status(task_id)
    launch = (run.started_at - run.created_at).total_seconds()
    return {
        "task_id": task_id,
        "request_to_completed_s": round(wall, 2),
        "request_to_run_created_s": round((run.created_at - requested).total_seconds(), 3),
        "run_launch_s": round(launch, 2),
        "run_launch_share": round(launch / wall, 3),
        "run_s": round((run.ended_at - run.started_at).total_seconds(), 2),
        "run_end_to_completed_seen_s": round(wall - (run.ended_at - requested).total_seconds(), 2),
        "trade_count": status["result"]["trade_count"],
        "total_return_pct": status["result"]["total_return_pct"],
    }


def platform_config(args: argparse.Namespace, first: dt.date, api_port: int) -> dict[str, object]:
    return {
        "symbols": list(SYMBOLS[: args.symbols]),
        "intervals": [args.interval],
        "history_start": first.isoformat(),
        "strategies": [{"name": args.strategy, "kind": args.strategy}],
        "api": {"host": LOOPBACK, "port": api_port},
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    first = yesterday - dt.timedelta(days=args.days - 1)
    symbols = SYMBOLS[: args.symbols]
    with tempfile.TemporaryDirectory(prefix="coin-bench-api-") as workdir, ExitStack() as running:
        home = Path(workdir)
        config = home / "config.yaml"
        config.write_text(yaml.safe_dump(platform_config(args, first, free_port())))
        s3_port = running.enter_context(seaweedfs(home))
        os.environ.update(bench_environ(home, config, s3_port))
        settings: Settings = load_settings(dict(os.environ))
        log(f"storing {args.days} days of {args.interval} candles of {', '.join(symbols)}")
        candles = store_candles(ObjectStore.from_settings(settings), symbols, args.interval, first, yesterday)
        dagster_home = prepare_dagster_home(settings)
        log("starting the Dagster webserver (no daemon yet: the timed launches stay queued)")
        webserver = running.enter_context(
            dagster_webserver(
                dagster_home, PROJECT_ROOT / "workspace.yaml", {}, daemon=False, stop_grace=DISPOSABLE_STOP_GRACE_S
            )
        )
        os.environ["DAGSTER_URL"] = webserver.url
        api = start_api(settings, home / "logs" / "api.log")
        running.callback(api.stop)
        url = api_url(settings)

        log(f"timing {args.requests} run-async requests at {url}")
        asked = {"strategy": args.strategy, "interval": args.interval, "end": yesterday.isoformat()}
        one_day = {**asked, "start": yesterday.isoformat()}
        seconds, task_ids = time_run_async(url, one_day, args.requests)
        cancel_queued(webserver.url, task_ids)

        log("starting the daemon; backtesting the whole range")
        running.enter_context(daemon(dagster_home, webserver.url, home / "logs" / "dagster-daemon.log"))
        whole = {**asked, "start": first.isoformat(), "funding": False}
        backtest = backtest_wall_time(url, webserver.url, whole, args.timeout)
        log(f"completed in {backtest['request_to_completed_s']} s; stopping")
    return emit(
        {
            "bench": "api",
            "params": {
                "requests": args.requests,
                "days": args.days,
                "interval": args.interval,
                "symbols": list(symbols),
                "strategy": args.strategy,
                "candles": candles,
                "range": f"{first}..{yesterday}",
            },
            "run_async_ms": spread_ms(seconds),
            "backtest": backtest,
            "reference": "run launch = Dagster's run created → RUN_START (queue dequeue, then a process that loads "
            "the code location), the same cost bench/latency.py measures on the live path",
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        },
        args.json_out,
    )


if __name__ == "__main__":
    sys.exit(main())
