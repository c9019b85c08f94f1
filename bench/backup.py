"""Backup benchmark: `create_backup` and `restore_backup` of a demo-like state into a real SeaweedFS.

The state is what `make demo` leaves after `--days` days of `--symbols` symbols, made directly with
the platform's writers in a temporary COIN_HOME: the hot store (chDB: 1m candles, their rollups,
15m/1h candles, 1m features, candidates), the DuckDB warehouse (raw 1m candles and features), the
trading store (`--orders` filled paper orders) and a sqlite Dagster instance with `--runs` runs.
Each repeat backs it up (copy, compress, upload, manifest) and restores it (download, verify,
stage, swap in); the median seconds and the sizes are reported, per part too.

    python bench/backup.py
    python bench/backup.py --days 3 --symbols 3 --orders 500 --runs 30 --repeats 3
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import tempfile
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
from report import emit  # bench/report.py, beside this script

from coin_platform.backup.archive import create_backup, restore_backup
from coin_platform.backup.parts import ChDBPart, DagsterSqlitePart, DuckDBFilePart
from coin_platform.events.schemas import Candidate, Decision, candidate_id
from coin_platform.features import FEATURE_SCHEMA
from coin_platform.local import stack
from coin_platform.market.klines import OHLCV_SCHEMA, resample_ohlcv
from coin_platform.storage.clickhouse import ClickHouseConfig, open_hot_store
from coin_platform.storage.warehouse import DuckDBWarehouse
from coin_platform.storage.warehouse_tables import features_table, ohlcv_table
from coin_platform.trading.orders import Fill, OrderRequest, OrderResult
from coin_platform.trading.store import TradingStore

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT")
BUCKET = "bench-backup"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=3, help="days of candles (hot store retention is 3)")
    parser.add_argument("--symbols", type=int, default=3, choices=range(1, len(SYMBOLS) + 1))
    parser.add_argument("--orders", type=int, default=300, help="filled paper orders in the trading store")
    parser.add_argument("--runs", type=int, default=20, help="runs recorded in the Dagster instance")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json-out", type=Path)
    return parser.parse_args(argv)


def minutes(day: dt.date, rng: np.random.Generator) -> pl.DataFrame:
    start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    close = 100 + np.cumsum(rng.normal(0, 0.1, 1440)).round(2)
    open_ = np.concatenate([[close[0]], close[:-1]])
    volume = rng.uniform(1, 50, 1440).round(3)
    return pl.DataFrame(
        {
            "open_time": [start + dt.timedelta(minutes=i) for i in range(1440)],
            "open": open_,
            "high": np.maximum(open_, close) + 0.1,
            "low": np.minimum(open_, close) - 0.1,
            "close": close,
            "volume": volume,
            "quote_volume": (volume * close).round(5),
            "trades": rng.integers(1, 500, 1440),
            "taker_buy_volume": (volume / 2).round(3),
            "taker_buy_quote_volume": (volume * close / 2).round(5),
        }
    ).cast(OHLCV_SCHEMA)


def features(candles: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
    return pl.DataFrame(
        {
            name: candles["open_time"] if name == "open_time" else pl.Series(name, rng.normal(100, 5, candles.height))
            for name in FEATURE_SCHEMA
        }
    ).cast(FEATURE_SCHEMA)


def make_state(home: Path, args: argparse.Namespace) -> dict[str, object]:
    """The demo-like state under `home`; returns its parts and what it holds."""
    rng = np.random.default_rng(7)
    today = dt.datetime.now(dt.UTC).date()
    days = [today - dt.timedelta(days=n) for n in range(args.days - 1, -1, -1)]
    symbols = SYMBOLS[: args.symbols]
    hot = ClickHouseConfig(path=str(home / "clickhouse" / "hot"))
    warehouse = DuckDBWarehouse(home / "warehouse" / "warehouse.duckdb")
    trading = TradingStore(home / "trading" / "trading.duckdb")
    candidates = []
    with open_hot_store(hot, 3) as store:
        for symbol in symbols:
            for day in days:
                candles = minutes(day, rng)
                store.replace_ohlcv_day("1m", symbol, day, candles)
                for interval in ("15m", "1h"):
                    coarse = resample_ohlcv(candles, interval).select(list(OHLCV_SCHEMA))
                    store.replace_ohlcv_day(interval, symbol, day, coarse)
                frame = features(candles, rng)
                store.replace_features_day("1m", symbol, day, frame)
                ohlcv_rows = candles.with_columns(symbol=pl.lit(symbol)).select(["symbol", *OHLCV_SCHEMA])
                warehouse.load_partition(ohlcv_table("1m"), ohlcv_rows, day, symbol)
                feature_rows = frame.with_columns(symbol=pl.lit(symbol)).select(["symbol", *FEATURE_SCHEMA])
                warehouse.load_partition(features_table("1m"), feature_rows, day, symbol)
                for open_time in candles["open_time"].gather_every(60):
                    candidates.append(
                        Candidate(
                            "ema_crossover",
                            symbol,
                            "1m",
                            open_time,
                            open_time + dt.timedelta(minutes=1, milliseconds=-1),
                            "enter_long",
                            100.0,
                        )
                    )
        store.write_candidates(candidates, {c.id: None for c in candidates})
    now = dt.datetime.now(dt.UTC)
    for n in range(args.orders):
        symbol = symbols[n % len(symbols)]
        moment = now - dt.timedelta(minutes=n)
        decision = Decision(
            candidate_id=candidate_id("ema_crossover", symbol, "1m", moment, "enter_long"),
            strategy="ema_crossover",
            symbol=symbol,
            interval="1m",
            signal="enter_long",
            action="buy",
            confidence=0.8,
            model_version="bench",
            price=100.0,
            candle_close_time=moment,
            decided_at=moment,
        )
        order = OrderRequest(decision.id, symbol, "buy" if n % 2 else "sell", 1.0, False, 100.0)
        result = OrderResult(decision.id, f"x{n}", "paper", "FILLED", (Fill(100.0 + n % 7, 1.0, 0.1, moment),))
        with trading.transaction() as tx:
            tx.record_pending(decision, order, broker="paper", created_at=moment)
            tx.record_outcome(order, result)
    dagster_home = home / "dagster_home"
    dagster_home.mkdir(parents=True)

    @dg.op
    def step() -> int:
        return 1

    @dg.job(name="bench_run")
    def bench_run() -> None:
        step()

    with dg.instance_for_test(temp_dir=str(dagster_home)) as instance:
        for _ in range(args.runs):
            bench_run.execute_in_process(instance=instance)
    return {
        "parts": [
            DuckDBFilePart("trading_store", trading.path, trading.lock_path),
            DuckDBFilePart("warehouse", warehouse.path, warehouse.lock_path),
            ChDBPart(hot),
            DagsterSqlitePart(dagster_home),
        ],
        "on_disk_bytes": {
            "trading_store": trading.path.stat().st_size,
            "warehouse": warehouse.path.stat().st_size,
            "hot_store": sum(p.stat().st_size for p in Path(hot.path).rglob("*") if p.is_file()),
            "dagster": sum(p.stat().st_size for p in dagster_home.rglob("*.db")),
        },
        "candles_1m": len(symbols) * len(days) * 1440,
        "candidates": len(candidates),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="coin-bench-backup-") as temporary:
        workdir = Path(temporary)
        with stack.throwaway_seaweedfs(workdir, (BUCKET,)) as s3:
            store = s3.object_store(BUCKET)
            state = make_state(workdir / "coin", args)
            start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
            backups, restores = [], []
            for repeat in range(args.repeats):
                backups.append(
                    create_backup(store, state["parts"], retention_days=30, now=start + dt.timedelta(hours=repeat))
                )
                restores.append(restore_backup(store, state["parts"], backups[-1].backup_id))
    files = backups[-1].manifest["files"]
    return emit(
        {
            "bench": "backup",
            "params": {
                "days": args.days,
                "symbols": args.symbols,
                "orders": args.orders,
                "runs": args.runs,
                "repeats": args.repeats,
            },
            "state": {
                "candles_1m": state["candles_1m"],
                "candidates": state["candidates"],
                "on_disk_bytes": state["on_disk_bytes"],
            },
            "backup": {
                "median_seconds": round(statistics.median(b.seconds for b in backups), 3),
                "bytes": backups[-1].bytes,
                "parts": {f["part"]: {"bytes": f["size"], "seconds": f["seconds"]} for f in files},
            },
            "restore": {"median_seconds": round(statistics.median(r.seconds for r in restores), 3)},
        },
        args.json_out,
    )


if __name__ == "__main__":
    raise SystemExit(main())
