"""Loader benchmark: `load_ohlcv` over a compacted year of 1m candles, from local disk and from S3.

Reference: reading the same rows straight from the pipeline's hourly objects
(8,760 for the year, 168 for the week) with ObjectStore.read_parquet_many,
which is what a reader without the archive would have to do.

The bench generates one year of 1m candles for one symbol (525,600 rows)
with the pipeline's own functions against an in-thread replay server
(ingest_raw_klines, build_ohlcv_day), compacts the year into its archive, and
copies the hourly objects and the archive into a SeaweedFS bucket it starts
on free loopback ports in a temporary directory (stopped by PID at the end).
It then times, as the median of `--repeats` runs after one warm-up, the whole
year and one week inside it, on both backends; the reference, about 100 times
slower, takes the median of `--reference-repeats`. Generating the year takes
over a minute; `--data-dir` keeps it for the next run.

Goals, from local disk: a year in at most 150 ms and a week in at most 20 ms.
Only the JSON result goes to stdout.

    python bench/loader.py                          # year 2023, BTCUSDT, 7 repeats
    python bench/loader.py --data-dir /some/dir     # generate once, reuse afterwards
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import polars as pl
from report import emit  # bench/report.py, beside this script

from coin_platform.loader import load_ohlcv
from coin_platform.local import stack
from coin_platform.local.replay import ReplayServer
from coin_platform.market.client import BinanceFuturesClient
from coin_platform.pipeline.compaction import compact_year
from coin_platform.pipeline.ingest import build_ohlcv_day, ingest_raw_klines
from coin_platform.settings import load_settings
from coin_platform.storage.layout import history_key, ohlcv_keys_between
from coin_platform.storage.object_store import IO_THREADS, ObjectStore

INTERVAL = "1m"
BUCKET = "bench-loader"
UNLIMITED_WEIGHT = 10**9
GOAL_YEAR_MS = 150.0
GOAL_WEEK_MS = 20.0
WEEK_START = (6, 3)  # (month, day) of the week read inside the year


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--year", type=int, default=2023, help="the UTC year of candles to generate")
    parser.add_argument("--symbol", default="BTCUSDT", help="a replay server symbol")
    parser.add_argument("--repeats", type=int, default=7, help="timed loader runs per measurement")
    parser.add_argument("--reference-repeats", type=int, default=3,
                        help="timed runs of the hourly-object reference per measurement")
    parser.add_argument("--data-dir", type=Path,
                        help="keep the generated local store here and reuse it when it is complete")
    parser.add_argument("--json-out", type=Path, help="also write the JSON result to this file")
    args = parser.parse_args(argv)
    if min(args.repeats, args.reference_repeats) < 1:
        parser.error("--repeats and --reference-repeats must be positive")
    return args


def year_days(year: int) -> list[dt.date]:
    first = dt.date(year, 1, 1)
    return [first + dt.timedelta(days=n) for n in range((dt.date(year + 1, 1, 1) - first).days)]


def generate_year(store: ObjectStore, symbol: str, year: int) -> float:
    """The pipeline's hourly objects of a year and their archive; returns the seconds it took."""
    started = time.perf_counter()
    days = year_days(year)
    now = dt.datetime.now(dt.UTC)
    with ReplayServer(weight_limit=UNLIMITED_WEIGHT) as server:
        client = BinanceFuturesClient(server.url)
        ingest_raw_klines(client, store, INTERVAL, symbol, days, only_missing=False)
    for day in days:
        build_ohlcv_day(store, INTERVAL, symbol, day, now=now, drop_zero_volume=False,
                        only_missing=False)
    compact_year(store, INTERVAL, symbol, year, through=days[-1])
    return time.perf_counter() - started


def copy_objects(source: ObjectStore, target: ObjectStore, keys: list[str]) -> None:
    with ThreadPoolExecutor(IO_THREADS * 4) as pool:
        list(pool.map(lambda key: target.write_bytes(key, source.read_bytes(key)), keys))


def median_ms(run: Callable[[], pl.DataFrame], repeats: int) -> tuple[float, pl.DataFrame]:
    """Median wall time of `run` after one warm-up, and what the warm-up returned."""
    result = run()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 2), result


def measure(store: ObjectStore, data_root: str, load_options: dict, symbol: str,
            first: dt.date, last: dt.date, args: argparse.Namespace) -> dict[str, object]:
    """The loader against the hourly-object reference for the UTC days first..last."""
    keys = ohlcv_keys_between(INTERVAL, symbol, first, last)
    start = dt.datetime(first.year, first.month, first.day, tzinfo=dt.UTC)
    end = dt.datetime(last.year, last.month, last.day, 23, 59, tzinfo=dt.UTC)  # inclusive

    def loader() -> pl.DataFrame:
        return load_ohlcv(symbol, start, end, INTERVAL, data_root, **load_options)

    def hourly() -> pl.DataFrame:
        return pl.concat(store.read_parquet_many(keys))

    loader_ms, loaded = median_ms(loader, args.repeats)
    hourly_ms, reference = median_ms(hourly, args.reference_repeats)
    values = ["open", "high", "low", "close", "volume"]
    same = loaded.select("timestamp", *values).equals(
        reference.select(pl.col("open_time").alias("timestamp"), *values))
    return {
        "first_day": first.isoformat(),
        "last_day": last.isoformat(),
        "rows": loaded.height,
        "same_rows_as_reference": same,
        "hourly_objects": len(keys),
        "loader_ms": loader_ms,
        "hourly_objects_ms": hourly_ms,
        "speedup": round(hourly_ms / loader_ms, 1),
    }


def measure_backend(store: ObjectStore, data_root: str, load_options: dict,
                    args: argparse.Namespace) -> dict[str, object]:
    week_first = dt.date(args.year, *WEEK_START)
    return {
        "year": measure(store, data_root, load_options, args.symbol, dt.date(args.year, 1, 1),
                        dt.date(args.year, 12, 31), args),
        "week": measure(store, data_root, load_options, args.symbol, week_first,
                        week_first + dt.timedelta(days=6), args),
    }


def is_generated(store: ObjectStore, symbol: str, year: int) -> bool:
    last_hour = ohlcv_keys_between(INTERVAL, symbol, dt.date(year, 12, 31), dt.date(year, 12, 31))[-1]
    return all(store.exists_many([history_key(symbol, INTERVAL, year), last_hour]))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="coin-bench-loader-") as temporary:
        workdir = Path(temporary)
        local_dir = args.data_dir or workdir / "local"
        local = ObjectStore.local(local_dir)
        reused = is_generated(local, args.symbol, args.year)
        generate_seconds = None if reused else round(generate_year(local, args.symbol, args.year), 1)
        local_result = measure_backend(local, str(local_dir), {}, args)

        ports = stack.SeaweedPorts.free()
        s3 = stack.S3Endpoint.on_loopback(ports.s3, stack.LOCAL_ACCESS_KEY, stack.LOCAL_SECRET_KEY)
        process = stack.start_seaweedfs(data_dir=workdir / "seaweedfs", log_dir=workdir / "logs",
                                        ports=ports, access_key=s3.access_key,
                                        secret_key=s3.secret_key, buckets=(BUCKET,))
        try:
            settings = load_settings({
                "COIN_HOME": str(workdir / ".coin"),
                "S3_ENDPOINT_URL": s3.endpoint_url,
                "S3_BUCKET": BUCKET,
                "AWS_REGION": s3.region,
                "AWS_ACCESS_KEY_ID": s3.access_key,
                "AWS_SECRET_ACCESS_KEY": s3.secret_key,
            })
            remote = ObjectStore.s3(BUCKET, endpoint_url=s3.endpoint_url, access_key=s3.access_key,
                                    secret_key=s3.secret_key, region=s3.region)
            keys = [history_key(args.symbol, INTERVAL, args.year),
                    *ohlcv_keys_between(INTERVAL, args.symbol, dt.date(args.year, 1, 1),
                                        dt.date(args.year, 12, 31))]
            copy_objects(local, remote, keys)
            s3_result = measure_backend(remote, f"s3://{BUCKET}", {"settings": settings}, args)
        finally:
            process.stop()
            stack.remove_weed_sockets(ports)

    result = {
        "bench": "loader",
        "reference": "the same rows read from the hourly objects with ObjectStore.read_parquet_many",
        "params": {
            "symbol": args.symbol,
            "interval": INTERVAL,
            "year": args.year,
            "repeats": args.repeats,
            "reference_repeats": args.reference_repeats,
            "generated_seconds": generate_seconds,
            "reused_data": reused,
        },
        "local": local_result,
        "s3": s3_result,
        "goals": {
            "local_year_ms": GOAL_YEAR_MS,
            "local_week_ms": GOAL_WEEK_MS,
            "met": (local_result["year"]["loader_ms"] <= GOAL_YEAR_MS
                    and local_result["week"]["loader_ms"] <= GOAL_WEEK_MS),
        },
    }
    return emit(result, args.json_out)


if __name__ == "__main__":
    sys.exit(main())
