"""Hot-store benchmark: chDB insert rate through Arrow and the live path's latest-features query.

Everything runs in one process against chDB on disk in a temporary directory,
through the platform's own functions (migrate, insert_ohlcv, replace_features_day,
latest_features). Rows are dated inside the retention window so TTL keeps them.

1. insert: 1,000,000 1m candles (symbols × the last days) inserted as one Arrow
   table into the hot tables, median of `--repeats` runs into emptied tables.
   Reference, same process and data: a plain MergeTree with the same columns
   (no ReplacingMergeTree, no materialized views). Goal ≥ 1 M rows/s.
2. latest features: `--symbols` symbols × 3 days of 1m feature rows, then the
   median latency of `latest_features` (one query, FINAL, LIMIT 1 BY symbol).
   Goal ≤ 50 ms for 50 symbols.

    python bench/hotstore.py
    python bench/hotstore.py --rows 2000000 --symbols 100 --repeats 7
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import tempfile
import time

import numpy as np
import polars as pl
from report import emit  # bench/report.py, beside this script

from coin_platform.features import FEATURE_SCHEMA
from coin_platform.market.klines import OHLCV_SCHEMA
from coin_platform.storage.clickhouse import (
    ClickHouseConfig,
    insert_ohlcv,
    latest_features,
    migrate,
    open_clickhouse,
    replace_features_day,
)

DAYS = 3
MINUTES_PER_DAY = 1440


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="candles per insert")
    parser.add_argument("--symbols", type=int, default=50, help="symbols in the latest-features query")
    parser.add_argument("--repeats", type=int, default=5)
    return parser.parse_args(argv)


def first_minute() -> dt.datetime:
    """Midnight UTC two days ago: the last three days stay inside a 3-day retention."""
    today = dt.datetime.now(dt.UTC).date()
    start = today - dt.timedelta(days=DAYS - 1)
    return dt.datetime(start.year, start.month, start.day, tzinfo=dt.UTC)


def candles(rows: int, start: dt.datetime) -> pl.DataFrame:
    """`rows` 1m candles in OHLCV_SCHEMA, with a `symbol` column, DAYS days per symbol."""
    per_symbol = DAYS * MINUTES_PER_DAY
    symbols = -(-rows // per_symbol)
    rng = np.random.default_rng(7)
    close = 100 + np.cumsum(rng.normal(0, 0.1, rows))
    minute = np.arange(rows) % per_symbol
    frame = pl.DataFrame(
        {
            "symbol": [f"SYM{i:04d}USDT" for i in np.arange(rows) // per_symbol],
            "open_time": pl.Series([start], dtype=OHLCV_SCHEMA["open_time"]).repeat_by(rows).explode()
            + pl.Series(minute * 60_000, dtype=pl.Int64).cast(pl.Duration("ms")),
            "open": close,
            "high": close + 0.05,
            "low": close - 0.05,
            "close": close,
            "volume": rng.uniform(1, 100, rows),
            "quote_volume": rng.uniform(100, 10_000, rows),
            "trades": rng.integers(1, 500, rows),
            "taker_buy_volume": rng.uniform(0, 1, rows),
            "taker_buy_quote_volume": rng.uniform(0, 100, rows),
        }
    )
    assert frame["symbol"].n_unique() == symbols
    return frame.with_columns(pl.col(c).cast(t) for c, t in OHLCV_SCHEMA.items())


def timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def insert_rates(client, frame: pl.DataFrame, repeats: int) -> dict[str, object]:
    """Median rows/s of one Arrow insert into each hot table and into the plain reference table."""
    table = frame.with_columns(version=pl.lit(1, dtype=pl.UInt64)).to_arrow()
    client.command(
        "CREATE TABLE IF NOT EXISTS coin.reference_plain AS coin.ohlcv_1h "
        "ENGINE = MergeTree PARTITION BY toDate(open_time) ORDER BY (symbol, open_time)"
    )
    targets = {
        "ohlcv_1m (ReplacingMergeTree + 2 rollup views)": ("ohlcv_1m", ["ohlcv_15m_from_1m", "ohlcv_1h_from_1m"]),
        "ohlcv_1h (ReplacingMergeTree)": ("ohlcv_1h", []),
        "reference: plain MergeTree": ("reference_plain", []),
    }
    rates = {}
    for label, (name, also_empty) in targets.items():
        seconds = []
        for _ in range(repeats):
            for emptied in (name, *also_empty):
                client.command(f"TRUNCATE TABLE coin.{emptied}")
            seconds.append(timed(lambda name=name: client.insert_arrow(name, table, database="coin")))
        rates[label] = round(frame.height / statistics.median(seconds))
    return rates


def features_rows(symbols: int, start: dt.datetime) -> dict[tuple[str, dt.date], pl.DataFrame]:
    rng = np.random.default_rng(11)
    rows = {}
    for i in range(symbols):
        for day in range(DAYS):
            first = start + dt.timedelta(days=day)
            n = MINUTES_PER_DAY
            data = {name: rng.normal(100, 5, n) for name in FEATURE_SCHEMA if name != "open_time"}
            data["open_time"] = [first + dt.timedelta(minutes=m) for m in range(n)]
            rows[(f"SYM{i:04d}USDT", first.date())] = (
                pl.DataFrame(data).cast(FEATURE_SCHEMA).select(list(FEATURE_SCHEMA))
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start = first_minute()
    frame = candles(args.rows, start)
    with tempfile.TemporaryDirectory() as directory:
        config = ClickHouseConfig(path=f"{directory}/hot.chdb")
        with open_clickhouse(config) as client:
            migrate(client, retention_days=DAYS)
            rates = insert_rates(client, frame, args.repeats)
            # The platform's own insert path once, for its overhead over the raw Arrow insert.
            client.command("TRUNCATE TABLE coin.ohlcv_1h")
            one_symbol = frame.filter(pl.col("symbol") == frame["symbol"][0]).drop("symbol")
            platform_seconds = timed(lambda: insert_ohlcv(client, "1h", "SYM0000USDT", one_symbol))

            days = features_rows(args.symbols, start)
            replace_seconds = [
                timed(lambda s=symbol, d=day, r=rows: replace_features_day(client, "1m", s, d, r))
                for (symbol, day), rows in days.items()
            ]
            symbols = [f"SYM{i:04d}USDT" for i in range(args.symbols)]
            latest = latest_features(client, "1m", symbols)
            latencies = [timed(lambda: latest_features(client, "1m", symbols)) for _ in range(max(args.repeats, 9))]
    plain = rates["reference: plain MergeTree"]
    result = {
        "bench": "hotstore",
        "reference": "plain MergeTree insert of the same Arrow table, same process (chDB)",
        "params": {
            "rows": frame.height,
            "symbols_in_insert": frame["symbol"].n_unique(),
            "days": DAYS,
            "feature_symbols": args.symbols,
            "repeats": args.repeats,
        },
        "insert_rows_per_s": rates,
        "insert_vs_reference": {label: round(rate / plain, 3) for label, rate in rates.items()},
        "insert_ohlcv_one_symbol_ms": round(platform_seconds * 1000, 2),
        "replace_features_day_ms": {
            "calls": len(replace_seconds),
            "median": round(statistics.median(replace_seconds) * 1000, 2),
            "first": round(replace_seconds[0] * 1000, 2),
            "last": round(replace_seconds[-1] * 1000, 2),
        },
        "latest_features": {
            "symbols_returned": latest.height,
            "feature_rows": args.symbols * DAYS * MINUTES_PER_DAY,
            "median_ms": round(statistics.median(latencies) * 1000, 2),
            "max_ms": round(max(latencies) * 1000, 2),
        },
    }
    result["goals"] = {
        "insert_rows_per_s_min": 1_000_000,
        "latest_features_ms_max": 50,
        "insert_met": rates["ohlcv_1h (ReplacingMergeTree)"] >= 1_000_000,
        "latest_features_met": result["latest_features"]["median_ms"] <= 50 and latest.height == args.symbols,
    }
    return emit(result)


if __name__ == "__main__":
    raise SystemExit(main())
