"""Warehouse benchmark: one function per measurement, each a section of the JSON; `--only` picks some.

load_rate: a year of 1m candles of one symbol, stored as the platform stores them (hourly parquet
objects, here in a local object store in a temporary directory), loaded into a DuckDB warehouse file
the way `warehouse_ohlcv_1m` does it (pipeline.warehouse.load_market_days): the platform's reader
(storage.ohlcv.read_ohlcv_days) reads the days' hourly objects in parallel, the rows go over as Arrow,
and every day's partition is replaced in one transaction.
Reference: DuckDB's own `read_parquet` of the same files into the same table, one INSERT.
Goal: platform rate ≥ 0.8 × the reference. It also records whether DuckDB's httpfs (read_parquet
straight from the S3 endpoint) can be loaded here.

    python bench/warehouse.py
    python bench/warehouse.py --only load_rate --days 30
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
from report import emit  # bench/report.py, beside this script

from coin_platform.market.klines import OHLCV_SCHEMA
from coin_platform.pipeline.warehouse import load_market_days
from coin_platform.storage.layout import day_start, ohlcv_day_keys
from coin_platform.storage.object_store import ObjectStore
from coin_platform.storage.ohlcv import write_ohlcv_day
from coin_platform.storage.warehouse import DuckDBWarehouse

SYMBOL = "BTCUSDT"
FIRST_DAY = dt.date(2024, 1, 1)
MINUTES_PER_DAY = 1440


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=sorted(SECTIONS), help="measure only these sections")
    parser.add_argument("--days", type=int, default=365, help="days of 1m candles in load_rate")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json-out", type=Path)
    return parser.parse_args(argv)


def day_candles(day: dt.date, rng: np.random.Generator) -> pl.DataFrame:
    close = 40_000 + np.cumsum(rng.normal(0, 5, MINUTES_PER_DAY))
    return pl.DataFrame(
        {
            "open_time": pl.datetime_range(
                day_start(day),
                day_start(day) + dt.timedelta(minutes=MINUTES_PER_DAY - 1),
                "1m",
                eager=True,
                time_unit="ms",
                time_zone="UTC",
            ),
            "open": close,
            "high": close + 2,
            "low": close - 2,
            "close": close,
            "volume": rng.uniform(1, 100, MINUTES_PER_DAY),
            "quote_volume": rng.uniform(1e4, 1e6, MINUTES_PER_DAY),
            "trades": rng.integers(1, 5000, MINUTES_PER_DAY),
            "taker_buy_volume": rng.uniform(0, 50, MINUTES_PER_DAY),
            "taker_buy_quote_volume": rng.uniform(0, 5e5, MINUTES_PER_DAY),
        }
    ).cast(OHLCV_SCHEMA)


def _timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def _httpfs_available() -> dict[str, object]:
    connection = duckdb.connect()
    try:
        connection.execute("LOAD httpfs")
        return {"available": True}
    except duckdb.Error as exc:
        return {"available": False, "error": str(exc).splitlines()[0]}
    finally:
        connection.close()


def load_rate(args: argparse.Namespace) -> dict[str, object]:
    days = [FIRST_DAY + dt.timedelta(days=n) for n in range(args.days)]
    rng = np.random.default_rng(3)
    with tempfile.TemporaryDirectory() as directory:
        store = ObjectStore.local(Path(directory) / "objects")
        for day in days:
            write_ohlcv_day(store, "1m", SYMBOL, day, day_candles(day, rng), hours_closed=24, only_missing=False)
        files = [store.path(key) for day in days for key in ohlcv_day_keys("1m", SYMBOL, day)]
        rows = len(days) * MINUTES_PER_DAY

        def platform(path: Path) -> None:
            load_market_days(DuckDBWarehouse(path), store, "ohlcv", "1m", SYMBOL, days)

        def reference(path: Path) -> None:
            DuckDBWarehouse(path).create_raw_tables()
            connection = duckdb.connect(str(path))
            try:
                connection.execute(
                    f"INSERT INTO raw.ohlcv_1m SELECT '{SYMBOL}' AS symbol, * FROM read_parquet($files)",
                    {"files": files},
                )
            finally:
                connection.close()

        seconds: dict[str, list[float]] = {"platform": [], "reference": []}
        for repeat in range(args.repeats):
            for name, action in (("platform", platform), ("reference", reference)):
                path = Path(directory) / f"{name}-{repeat}.duckdb"
                seconds[name].append(_timed(lambda action=action, path=path: action(path)))
                loaded = duckdb.connect(str(path), read_only=True)
                assert loaded.execute("SELECT count(*) FROM raw.ohlcv_1m").fetchall() == [(rows,)]
                loaded.close()
    rate = {name: round(rows / statistics.median(values)) for name, values in seconds.items()}
    ratio = round(rate["platform"] / rate["reference"], 3)
    return {
        "reference": "DuckDB read_parquet of the same hourly files into the same table, one INSERT",
        "params": {"symbol": SYMBOL, "days": len(days), "rows": rows, "files": len(files), "repeats": args.repeats},
        "rows_per_s": rate,
        "median_s": {name: round(statistics.median(values), 3) for name, values in seconds.items()},
        "platform_vs_reference": ratio,
        "httpfs": _httpfs_available(),
        "goal": {"platform_vs_reference_min": 0.8, "met": ratio >= 0.8},
    }


SECTIONS: dict[str, Callable[[argparse.Namespace], dict[str, object]]] = {"load_rate": load_rate}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    chosen = args.only or list(SECTIONS)
    return emit({"bench": "warehouse", **{name: SECTIONS[name](args) for name in chosen}}, args.json_out)


if __name__ == "__main__":
    raise SystemExit(main())
