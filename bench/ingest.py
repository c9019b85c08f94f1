"""Ingestion benchmark: a 1m candle backfill through the real Dagster assets under a weight budget.

Reference: Binance's REQUEST_WEIGHT budget for USD-M futures, which is 2400 per
1-minute window. The replay server enforces the same kind of budget with a smaller
limit (600 by default), so a short run is still limited by the budget.

The bench starts its own SeaweedFS (S3) and replay servers on free loopback
ports, in a temporary directory, and stops them by PID when it is done. It then
backfills N days (ending yesterday UTC, so no candle is still open) × the first M
of the replay server's symbols with job `ingest_1m`. It makes one range run per
symbol, as the backfill daemon does under the assets' BackfillPolicy (no run
holds more than `max_partitions_per_run` days), and runs them in process.

1. budget_limited: the client's weight limiter is on, as in production.
   The phase starts on a window boundary, so only the last window, which the
   end of the run cuts short, is partial. The replay server's /_replay/stats
   gives the weight used in each window as a fraction of the budget; the goal
   is a minimum of at least 0.9 over the full windows, with zero 429s. The
   phase also reports candles stored per second. The measurement is valid only
   if the run covers more than two windows and the limiter had to wait for
   the budget.
2. limiter_off: a second replay server with an effectively unlimited budget
   and a fresh bucket, with the limiter off. This measures the local cost of
   the whole job (fetching, raw parquet writes, cleaning, hourly parquet writes,
   the checks, and loading the days within the hot-store retention into chDB)
   in seconds per million candles, with each step timed separately. The
   fetch_and_clean step (fetching, raw writes and cleaning) includes the time
   the replay server takes to generate the candles.

Only the JSON result goes to stdout. Dagster logs warnings and errors to stderr.

    python bench/ingest.py                      # 40 days × 4 symbols at 600 weight/min (~3 min)
    python bench/ingest.py --days 10 --symbols 2 --weight-limit 2400 --json-out result.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import requests
import yaml
from report import emit  # bench/report.py, beside this script

from coin_platform.definitions import build_definitions
from coin_platform.defs.partitions import partition_range_tags
from coin_platform.defs.resources import BinanceResource
from coin_platform.local import stack
from coin_platform.local.replay import WINDOW_MS
from coin_platform.local.replay.synthetic import DEFAULT_SYMBOLS
from coin_platform.settings import Settings, load_settings

INTERVAL = "1m"
JOB = f"ingest_{INTERVAL}"
RAW_ASSET = f"raw_klines_{INTERVAL}"
MARKET_STEP = f"fetch_and_clean_{INTERVAL}"  # the one step that fetches raw klines and cleans them
BINANCE_WEIGHT_LIMIT = 2400
UNLIMITED_WEIGHT = 10**9
GOAL_WEIGHT_FRACTION = 0.9
# A run that starts this soon after a window opens counts as covering that window from its start.
FULL_WINDOW_SLACK_MS = 1000
# Dagster's console logger writes to stderr; keep it to problems.
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@dataclass(frozen=True)
class Backfill:
    """What a set of range runs stored and how long they took."""

    runs: int
    candles: int
    started_s: float  # wall clock, seconds since the epoch
    ended_s: float
    limiter_wait_seconds: float
    step_seconds: dict[str, float]

    @property
    def seconds(self) -> float:
        return self.ended_s - self.started_s

    @property
    def candles_per_second(self) -> float:
        return self.candles / self.seconds


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=40, help="days per symbol, ending yesterday UTC")
    parser.add_argument("--symbols", type=int, default=4,
                        help=f"the first M of {len(DEFAULT_SYMBOLS)} replay symbols")
    parser.add_argument("--weight-limit", type=int, default=600,
                        help="replay server REQUEST_WEIGHT limit per 1-minute window")
    parser.add_argument("--unlimited-days", type=int,
                        help="days per symbol of the limiter-off phase (default: --days)")
    parser.add_argument("--json-out", type=Path, help="also write the JSON result to this file")
    parser.add_argument("--start-mid-window", action="store_true",
                        help="start at once, not at the next window boundary (the first window "
                             "is then partial too); for quick checks of the bench itself")
    args = parser.parse_args(argv)
    if args.unlimited_days is None:
        args.unlimited_days = args.days
    if min(args.days, args.unlimited_days, args.weight_limit) < 1:
        parser.error("--days, --unlimited-days and --weight-limit must be positive")
    if not 1 <= args.symbols <= len(DEFAULT_SYMBOLS):
        parser.error(f"--symbols must be within 1..{len(DEFAULT_SYMBOLS)}")
    return args


def day_range(days: int) -> tuple[dt.date, dt.date]:
    """The last `days` closed UTC days: [first, yesterday]."""
    last = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    return last - dt.timedelta(days=days - 1), last


def bench_settings(directory: Path, symbols: tuple[str, ...], history_start: dt.date,
                   replay_url: str, s3: stack.S3Endpoint, bucket: str) -> Settings:
    """Settings for the replay server at `replay_url` and `bucket`, with config.yaml in `directory`."""
    directory.mkdir(parents=True)
    config = directory / "config.yaml"
    config.write_text(yaml.safe_dump({
        "symbols": list(symbols), "intervals": [INTERVAL], "history_start": history_start.isoformat(),
    }))
    return load_settings({
        "COIN_CONFIG": str(config),
        "COIN_HOME": str(directory / ".coin"),
        "MARKET_SOURCE": "replay",
        "REPLAY_URL": replay_url,
        "S3_ENDPOINT_URL": s3.endpoint_url,
        "S3_BUCKET": bucket,
        "AWS_REGION": s3.region,
        "AWS_ACCESS_KEY_ID": s3.access_key,
        "AWS_SECRET_ACCESS_KEY": s3.secret_key,
    })


def range_runs(symbols: tuple[str, ...], first: dt.date, last: dt.date,
               max_days: int) -> list[dict[str, str]]:
    """Run tags per symbol, with no run covering more than `max_days` days."""
    runs = []
    for symbol in symbols:
        start = first
        while start <= last:
            end = min(last, start + dt.timedelta(days=max_days - 1))
            runs.append(partition_range_tags(start, end, symbol, symbol))
            start = end + dt.timedelta(days=1)
    return runs


def run_backfill(defs: dg.Definitions, runs: list[dict[str, str]],
                 resources: dict[str, dg.ConfigurableResource] | None = None) -> Backfill:
    """Execute `runs` of the ingest job one after the other, in process."""
    job = defs.resolve_job_def(JOB)
    candles = 0
    limiter_wait = 0.0
    step_seconds: dict[str, float] = {}
    with dg.DagsterInstance.ephemeral() as instance:
        started = time.time()
        for tags in runs:
            result = job.execute_in_process(run_config=QUIET_RUN_CONFIG, tags=tags,
                                            instance=instance, resources=resources)
            raw = next(m.metadata for m in result.asset_materializations_for_node(MARKET_STEP)
                       if m.asset_key == dg.AssetKey(RAW_ASSET))
            candles += raw["dagster/row_count"].value
            limiter_wait += raw["weight_limiter_wait_s"].value
            for event in result.get_step_success_events():
                seconds = event.event_specific_data.duration_ms / 1000
                step_seconds[event.step_key] = step_seconds.get(event.step_key, 0.0) + seconds
        ended = time.time()
    return Backfill(runs=len(runs), candles=candles, started_s=started, ended_s=ended,
                    limiter_wait_seconds=limiter_wait, step_seconds=step_seconds)


def wait_for_next_window() -> None:
    """Sleep until just after the next wall-clock minute, where the replay server's windows start."""
    now_ms = time.time() * 1000
    time.sleep((WINDOW_MS - now_ms % WINDOW_MS) / 1000 + 0.05)


def replay_stats(url: str) -> dict:
    response = requests.get(f"{url}/_replay/stats", timeout=10)
    response.raise_for_status()
    return response.json()


def window_report(stats: dict, backfill: Backfill) -> dict[str, object]:
    """Weight per window of the run as a fraction of the budget.

    Windows without a request count as zero. A window is full when the run
    covered it from its start (within FULL_WINDOW_SLACK_MS) to its end.
    """
    limit = stats["weight_limit"]
    by_start = {w["window_start_ms"]: w for w in stats["windows"]}
    started_ms, ended_ms = int(backfill.started_s * 1000), int(backfill.ended_s * 1000)
    windows, full = [], []
    for start_ms in range(started_ms - started_ms % WINDOW_MS, ended_ms, WINDOW_MS):
        counts = by_start.get(start_ms, {"weight": 0, "requests": 0, "rejected_429": 0,
                                         "rejected_418": 0})
        fraction = round(counts["weight"] / limit, 4)
        windows.append({
            "window_start": dt.datetime.fromtimestamp(start_ms / 1000, dt.UTC).isoformat(),
            "weight": counts["weight"],
            "fraction_of_budget": fraction,
            "requests": counts["requests"],
            "rejected_429": counts["rejected_429"],
            "rejected_418": counts["rejected_418"],
        })
        if start_ms >= started_ms - FULL_WINDOW_SLACK_MS and start_ms + WINDOW_MS <= ended_ms:
            full.append(fraction)
    return {
        "windows": len(windows),
        "full_windows": len(full),
        "over_two_windows": len(full) >= 2,
        "full_window_fraction_min": min(full) if full else None,
        "full_window_fraction_mean": round(sum(full) / len(full), 4) if full else None,
        "rejected_429": sum(w["rejected_429"] for w in windows),
        "rejected_418": sum(w["rejected_418"] for w in windows),
        "per_window": windows,
    }


def backfill_report(backfill: Backfill) -> dict[str, object]:
    return {
        "runs": backfill.runs,
        "candles": backfill.candles,
        "seconds": round(backfill.seconds, 2),
        "candles_per_second": round(backfill.candles_per_second, 1),
        "step_seconds": {step: round(s, 2) for step, s in backfill.step_seconds.items()},
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    symbols = DEFAULT_SYMBOLS[: args.symbols]
    first, last = day_range(args.days)
    unlimited_first, _ = day_range(args.unlimited_days)
    history_start = min(first, unlimited_first)
    started: list[stack.ServiceProcess] = []
    with tempfile.TemporaryDirectory(prefix="coin-bench-") as temporary:
        workdir = Path(temporary)
        ports = stack.SeaweedPorts.free()
        s3 = stack.S3Endpoint.on_loopback(ports.s3, stack.LOCAL_ACCESS_KEY, stack.LOCAL_SECRET_KEY)
        try:
            started.append(stack.start_seaweedfs(
                data_dir=workdir / "seaweedfs", log_dir=workdir / "logs", ports=ports,
                access_key=s3.access_key, secret_key=s3.secret_key,
                buckets=("bench-limited", "bench-unlimited")))

            def start_replay(weight_limit: int) -> str:
                port = stack.free_port()
                started.append(stack.start_replay(port=port, weight_limit=weight_limit,
                                                  log_file=workdir / "logs" / f"replay-{port}.log"))
                return f"http://{stack.LOOPBACK}:{port}"

            limited_url = start_replay(args.weight_limit)
            settings = bench_settings(workdir / "limited", symbols, history_start, limited_url,
                                      s3, "bench-limited")
            max_days = settings.config.ingestion.max_partitions_per_run
            defs = build_definitions(settings)
            if not args.start_mid_window:
                wait_for_next_window()
            limited = run_backfill(defs, range_runs(symbols, first, last, max_days))
            windows = window_report(replay_stats(limited_url), limited)

            unlimited_url = start_replay(UNLIMITED_WEIGHT)
            unlimited_settings = bench_settings(workdir / "unlimited", symbols, history_start,
                                                unlimited_url, s3, "bench-unlimited")
            limiter_off = BinanceResource(base_url=unlimited_url, source="replay",
                                          limiter_enabled=False)
            unlimited = run_backfill(
                build_definitions(unlimited_settings),
                range_runs(symbols, unlimited_first, last, max_days),
                resources={"binance": limiter_off},
            )
        finally:
            for process in reversed(started):
                process.stop()
            stack.remove_weed_sockets(ports)

    budget_fraction = settings.config.ingestion.weight_budget_fraction
    valid = windows["over_two_windows"] and limited.limiter_wait_seconds > 0
    result = {
        "bench": "ingest",
        "reference": (f"Binance REQUEST_WEIGHT budget (replay server, {args.weight_limit} per "
                      f"1-minute window; Binance publishes {BINANCE_WEIGHT_LIMIT})"),
        "params": {
            "interval": INTERVAL,
            "symbols": list(symbols),
            "days": args.days,
            "first_day": first.isoformat(),
            "last_day": last.isoformat(),
            "weight_limit": args.weight_limit,
            "client_weight_budget_fraction": budget_fraction,
            "client_weight_budget": int(args.weight_limit * budget_fraction),
            "max_partitions_per_run": max_days,
            "unlimited_days": args.unlimited_days,
        },
        "budget_limited": {
            **backfill_report(limited),
            "limiter_wait_seconds": round(limited.limiter_wait_seconds, 2),
            **windows,
        },
        "limiter_off": {
            **backfill_report(unlimited),
            "seconds_per_million_candles": round(unlimited.seconds / unlimited.candles * 1e6, 1),
        },
        "goals": {
            "weight_fraction_min": GOAL_WEIGHT_FRACTION,
            "zero_429": True,
            "valid_run": valid,
            "met": (valid and windows["full_window_fraction_min"] >= GOAL_WEIGHT_FRACTION
                    and windows["rejected_429"] == 0),
        },
    }
    return emit(result, args.json_out)


if __name__ == "__main__":
    sys.exit(main())
