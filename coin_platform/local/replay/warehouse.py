"""A DuckDB warehouse whose raw tables hold the platform's own data, for the dbt project's tests and bench.

Candles are the replay exchange's (its seeded synthetic market, as `coin replay serve` answers them),
cleaned as ingestion cleans them; features come from `compute_features`, candidates from
`candidates_from_features` with config.yaml's strategies, decisions from the live rule scorer. Orders
and fills are the paper desk's shape: one order and one fill per acted decision, the fill paying the
fee at the candle's close. Every table has exactly RAW_TABLES' columns and is loaded into schema `raw`
by `DuckDBWarehouse`, a day partition at a time, as the loaders load it. `run_dbt` runs the dbt CLI
over that file.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from coin_platform.core.intervals import SUPPORTED_INTERVALS, interval_ms
from coin_platform.defs.resources import DBT_EXECUTABLE, DBT_PROJECT_DIR
from coin_platform.events.candidates import candidates_from_features
from coin_platform.events.schemas import Candidate, Decision
from coin_platform.features import compute_features
from coin_platform.local.replay import synthetic
from coin_platform.market.klines import clean_klines, parse_kline_rows
from coin_platform.ml.scorers import live_scorer
from coin_platform.settings import PROJECT_ROOT, Settings, load_settings
from coin_platform.storage.warehouse import DuckDBWarehouse, raw_table
from coin_platform.storage.warehouse_tables import RAW_TABLES, features_table, ohlcv_table
from coin_platform.strategies import build_strategies

PAGE = 1500


@dataclass(frozen=True)
class RawData:
    """The frames written to the raw tables, by table name (RAW_TABLES' columns)."""

    tables: dict[str, pl.DataFrame]

    def rows(self, table: str) -> int:
        return self.tables[table].height


def platform_settings(coin_home: Path) -> Settings:
    return load_settings({"COIN_CONFIG": str(PROJECT_ROOT / "config.yaml"), "COIN_HOME": str(coin_home)})


def replay_candles(symbol: str, interval: str, *, start: dt.datetime, days: int) -> pl.DataFrame:
    """symbol and the OHLCV columns of the replay exchange's closed candles of `days` days from `start`,
    cleaned as ingestion cleans them."""
    if start.tzinfo is None:
        raise ValueError(f"start {start} has no time zone: replay candles are asked for in UTC")
    if days < 1:
        raise ValueError(f"days must be at least 1, not {days}")
    end = start + dt.timedelta(days=days)
    step = interval_ms(interval)
    start_ms, end_ms = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
    rows: list[list] = []
    cursor = start_ms
    while cursor < end_ms:
        page = synthetic.klines(symbol, interval, start_ms=cursor, end_ms=end_ms - 1, limit=PAGE, now_ms=end_ms)
        if not page:
            break
        rows.extend(page)
        cursor = page[-1][0] + step
    candles = clean_klines(parse_kline_rows(rows), interval, now=end).frame
    return candles.select(pl.lit(symbol).alias("symbol"), pl.all())


def _candidate_rows(candidates: list[Candidate]) -> pl.DataFrame:
    return pl.DataFrame(
        [
            {
                "candidate_id": c.id,
                "strategy": c.strategy,
                "symbol": c.symbol,
                "interval": c.interval,
                "open_time": c.open_time,
                "close_time": c.close_time,
                "signal": c.signal,
                "side": c.side,
                "price": c.price,
                "features": json.dumps(c.features, sort_keys=True),
                "detected_at": c.detected_at,
                "published_at": None,
            }
            for c in candidates
        ],
        schema=RAW_TABLES["candidates"].columns,
    )


def _decision_rows(decisions: list[Decision]) -> pl.DataFrame:
    return pl.DataFrame(
        [
            {
                "decision_id": d.id,
                "candidate_id": d.candidate_id,
                "strategy": d.strategy,
                "symbol": d.symbol,
                "interval": d.interval,
                "signal": d.signal,
                "action": d.action,
                "confidence": d.confidence,
                "model_version": d.model_version,
                "price": d.price,
                "candle_close_time": d.candle_close_time,
                "inputs": json.dumps(d.inputs, sort_keys=True),
                "decided_at": d.decided_at,
                "published_at": d.decided_at,
            }
            for d in decisions
        ],
        schema=RAW_TABLES["decisions"].columns,
    )


def _paper_orders(decisions: list[Decision], fee_rate: float) -> tuple[pl.DataFrame, pl.DataFrame]:
    """One filled order of one unit per acted decision and its one fill, which pays the fee."""
    acted = [d for d in decisions if d.action != "hold"]
    orders = pl.DataFrame(
        [
            {
                "client_order_id": d.id,
                "decision_id": d.id,
                "strategy": d.strategy,
                "signal": d.signal,
                "symbol": d.symbol,
                "side": d.action,
                "quantity": 1.0,
                "reduce_only": d.signal.startswith("exit_"),
                "reference_price": d.price,
                "status": "filled",
                "broker": "paper",
                "exchange_order_id": f"paper-{d.id[:12]}",
                "filled_quantity": 1.0,
                "average_price": d.price,
                "fees": d.price * fee_rate,
                "reason": None,
                "created_at": d.decided_at,
            }
            for d in acted
        ],
        schema=RAW_TABLES["orders"].columns,
    )
    fills = pl.DataFrame(
        [
            {
                "client_order_id": d.id,
                "seq": 1,
                "symbol": d.symbol,
                "side": d.action,
                "price": d.price,
                "quantity": 1.0,
                "fee": d.price * fee_rate,
                "realized_pnl": -d.price * fee_rate,
                "filled_at": d.decided_at,
            }
            for d in acted
        ],
        schema=RAW_TABLES["fills"].columns,
    )
    return orders, fills


def platform_raw_data(
    settings: Settings, symbols: list[str], start: dt.date, days: int, intervals: tuple[str, ...] = SUPPORTED_INTERVALS
) -> RawData:
    """Every raw table for `days` UTC days from `start` on `symbols`, made by the platform's own code."""
    begin = dt.datetime(start.year, start.month, start.day, tzinfo=dt.UTC)
    end = begin + dt.timedelta(days=days)
    scorer = live_scorer(settings.config)
    tables: dict[str, pl.DataFrame] = {}
    candidates: list[Candidate] = []
    for interval in intervals:
        candles = pl.concat([replay_candles(symbol, interval, start=begin, days=days) for symbol in symbols])
        features = compute_features(candles, interval)
        tables[ohlcv_table(interval)] = candles.select(list(RAW_TABLES[ohlcv_table(interval)].columns))
        tables[features_table(interval)] = features.select(list(RAW_TABLES[features_table(interval)].columns))
        strategies = build_strategies(settings.config.strategies, interval)
        for symbol in symbols:
            candidates += candidates_from_features(
                strategies,
                features.filter(pl.col("symbol") == symbol).drop("symbol"),
                symbol=symbol,
                interval=interval,
                detected_at=end,
            )
    decisions = [scorer.decide(c, c.features, now=c.close_time + dt.timedelta(seconds=1)) for c in candidates]
    tables["candidates"] = _candidate_rows(candidates)
    tables["decisions"] = _decision_rows(decisions)
    tables["orders"], tables["fills"] = _paper_orders(decisions, settings.config.trading.fee_rate)
    return RawData(tables)


def write_raw_tables(path: Path, data: RawData) -> None:
    """Every raw table in the DuckDB file at `path` (created if missing), with `data`'s rows loaded a UTC
    day at a time; RAW_TABLES' checks refuse a frame that does not fit its table."""
    warehouse = DuckDBWarehouse(path, holder="replay raw tables")
    warehouse.create_raw_tables()
    for name, frame in data.tables.items():
        warehouse.load_partitions(name, _day_partitions(frame, raw_table(name).day_column))


def _day_partitions(frame: pl.DataFrame, day_column: str) -> list[tuple[pl.DataFrame, dt.date, None]]:
    """`frame` split by the UTC day of `day_column`, as `load_partitions` takes it."""
    by_day = frame.with_columns(_day=pl.col(day_column).dt.date())
    return [(part.drop("_day"), part["_day"][0], None) for part in by_day.partition_by("_day", maintain_order=True)]


def warehouse_file(coin_home: Path) -> Path:
    """Where the dbt profile's `local` output puts the warehouse under COIN_HOME."""
    return coin_home / "warehouse" / "warehouse.duckdb"


@dataclass(frozen=True)
class DbtRun:
    """One dbt invocation's outcome: its exit code, output and run_results.json."""

    returncode: int
    output: str
    results: dict

    def statuses(self) -> dict[str, str]:
        """unique_id -> status (success, pass, fail, error, skipped) of every node the run executed."""
        return {r["unique_id"]: r["status"] for r in self.results.get("results", [])}


def run_dbt(
    args: list[str],
    coin_home: Path,
    work_dir: Path,
    project_dir: Path = DBT_PROJECT_DIR,
    profiles_dir: Path = DBT_PROJECT_DIR,
    target: str = "local",
) -> DbtRun:
    """`dbt <args>` on `target` (the duckdb one over COIN_HOME's warehouse unless told otherwise); its
    artefacts and logs under `work_dir`."""
    target_path = work_dir / "target"
    command = [
        str(DBT_EXECUTABLE),
        *args,
        "--project-dir",
        str(project_dir),
        "--profiles-dir",
        str(profiles_dir),
        "--target",
        target,
        "--target-path",
        str(target_path),
        "--log-path",
        str(work_dir / "logs"),
    ]
    environment = {**os.environ, "COIN_HOME": str(coin_home)}  # `--target` picks the output
    done = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=600, check=False)
    results_file = target_path / "run_results.json"
    results = json.loads(results_file.read_text()) if results_file.exists() else {}
    return DbtRun(done.returncode, done.stdout + done.stderr, results)
