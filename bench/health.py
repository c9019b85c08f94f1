"""`coin health` wall time on the local stack: the command as an operator runs it, start to exit.

SeaweedFS and tansu (on SeaweedFS, as `coin stack up` runs them) on free loopback ports in a temporary
COIN_HOME, this minute's candles of every configured symbol × interval in the bucket, the project's
dagster.yaml as DAGSTER_HOME with fresh daemon heartbeats; then `coin health --json` `--runs` times.
a migrated chDB hot store. Reported: the command's wall time (interpreter start and imports included) and the
checks' own time (the report's `seconds`), p50 and max, and any component that failed; the goal is ≤ 2 s.

    python bench/health.py            # 5 runs
    python bench/health.py --runs 1
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

import polars as pl
from report import emit  # bench/report.py, beside this script

from coin_platform.core.intervals import interval_ms
from coin_platform.local.dev import prepare_dagster_home
from coin_platform.local.stack import (
    DEFAULT_REGION,
    LOCAL_ACCESS_KEY,
    LOCAL_SECRET_KEY,
    TANSU_BUCKET,
    S3Endpoint,
    SeaweedPorts,
    free_port,
    remove_weed_sockets,
    start_seaweedfs,
    start_tansu,
)
from coin_platform.market.klines import OHLCV_SCHEMA
from coin_platform.settings import PROJECT_ROOT, Settings, load_settings
from coin_platform.storage.clickhouse import ClickHouseConfig, open_hot_store
from coin_platform.storage.object_store import ObjectStore
from coin_platform.storage.ohlcv import write_ohlcv_day

BUCKET = "coin-platform"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="how many times to run `coin health --json`")
    parser.add_argument("--json-out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


def store_fresh_candles(settings: Settings, now: dt.datetime) -> None:
    """Three candles per symbol × interval, the last closing in the current minute, as hourly objects."""
    store = ObjectStore.from_settings(settings)
    close = now.replace(second=0, microsecond=0)
    for interval in settings.config.intervals:
        length = dt.timedelta(milliseconds=interval_ms(interval))
        opens = [close - length * n for n in (3, 2, 1)]
        frame = (
            pl.DataFrame({"open_time": opens})
            .with_columns(
                *(pl.lit(100.0).alias(c) for c in ("open", "high", "low", "close", "volume", "quote_volume")),
                pl.lit(5).alias("trades"),
                pl.lit(0.5).alias("taker_buy_volume"),
                pl.lit(50.0).alias("taker_buy_quote_volume"),
            )
            .select(list(OHLCV_SCHEMA))
            .cast(OHLCV_SCHEMA)
        )  # type: ignore[arg-type]
        for (day,), rows in frame.group_by(pl.col("open_time").dt.date()):
            hours_closed = now.hour if day == now.date() else 24
            for symbol in settings.config.symbols:
                write_ohlcv_day(store, interval, symbol, day, rows, hours_closed=hours_closed, only_missing=False)


def heartbeats(dagster_home: Path) -> None:
    """Every daemon the instance needs has just beaten, as under `coin dev`."""
    from dagster import DagsterInstance
    from dagster._daemon.types import DaemonHeartbeat

    with DagsterInstance.from_config(str(dagster_home)) as instance:
        for daemon in instance.get_required_daemon_types():
            instance.add_daemon_heartbeat(DaemonHeartbeat(time.time(), daemon, str(uuid.uuid4())))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="coin-bench-health-") as workdir, ExitStack() as running:
        home = Path(workdir)
        ports = SeaweedPorts.free()
        seaweed = start_seaweedfs(
            data_dir=home / "seaweedfs",
            log_dir=home / "logs",
            ports=ports,
            access_key=LOCAL_ACCESS_KEY,
            secret_key=LOCAL_SECRET_KEY,
            buckets=[BUCKET, TANSU_BUCKET],
        )
        running.callback(remove_weed_sockets, ports)
        running.callback(seaweed.stop)
        s3 = S3Endpoint.on_loopback(ports.s3, LOCAL_ACCESS_KEY, LOCAL_SECRET_KEY)
        kafka_port = free_port()
        broker = start_tansu(
            port=kafka_port, log_file=home / "logs" / "tansu.log", storage_url=f"s3://{TANSU_BUCKET}/", s3=s3
        )
        running.callback(broker.stop)
        environ = {
            "COIN_CONFIG": str(PROJECT_ROOT / "config.yaml"),
            "COIN_HOME": str(home / ".coin"),
            "S3_ENDPOINT_URL": s3.endpoint_url,
            "S3_BUCKET": BUCKET,
            "AWS_REGION": DEFAULT_REGION,
            "AWS_ACCESS_KEY_ID": LOCAL_ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": LOCAL_SECRET_KEY,
            "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{kafka_port}",
        }
        settings = load_settings(environ)
        store_fresh_candles(settings, dt.datetime.now(dt.UTC))
        with open_hot_store(ClickHouseConfig(path=str(settings.hot_store_path)), settings.config.retention_days):
            pass  # created and migrated, as the first ingest run leaves it
        dagster_home = prepare_dagster_home(settings)
        heartbeats(dagster_home)
        command = [sys.executable, "-m", "coin_platform.local.cli", "health", "--json"]
        env = {**os.environ, **environ, "DAGSTER_HOME": str(dagster_home)}
        walls, checks, failed = [], [], set()
        for _ in range(args.runs):
            started = time.monotonic()
            answer = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
            walls.append(time.monotonic() - started)
            report = json.loads(answer.stdout)
            checks.append(report["seconds"])
            failures = [c for c in report["checks"] if c["status"] == "fail"]
            failed |= {f"{c['component']} {c['name']}: {c['detail']}" for c in failures}
    return emit(
        {
            "bench": "health",
            "params": {
                "runs": args.runs,
                "symbols": list(settings.config.symbols),
                "intervals": list(settings.config.intervals),
            },
            "command_s": {"p50": round(statistics.median(walls), 3), "max": round(max(walls), 3)},
            "checks_s": {"p50": round(statistics.median(checks), 3), "max": round(max(checks), 3)},
            "failed_checks": sorted(failed),
            "goal_s": 2.0,
            "machine": {
                "cpus": os.cpu_count(),
                "load_1m": round(os.getloadavg()[0], 2),
                "python": platform.python_version(),
            },
        },
        args.json_out,
    )


if __name__ == "__main__":
    sys.exit(main())
