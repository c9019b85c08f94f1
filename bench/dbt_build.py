"""dbt build benchmark: `dbt build` of dbt_snowflake on the duckdb target over days × symbols × 3 intervals.

The raw tables hold the platform's own data, made as the tests make it (coin_platform/local/replay/
warehouse.py): the replay exchange's seeded synthetic candles for 1m, 15m and 1h, features from
`compute_features`, candidates from config.yaml's strategies, decisions from the live rule scorer, one
paper order and fill per acted decision. Reports the full build (every model and dbt test), an
incremental rebuild of one day (the vars a daily Dagster partition passes), and the rows of each mart.

    python bench/dbt_build.py                  # 30 days × 3 symbols
    python bench/dbt_build.py --days 3 --symbols 1
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

import duckdb
from report import emit  # bench/report.py, beside this script

from coin_platform.core.intervals import SUPPORTED_INTERVALS
from coin_platform.local.replay.synthetic import DEFAULT_SYMBOLS
from coin_platform.local.replay.warehouse import (
    DbtRun,
    platform_raw_data,
    platform_settings,
    run_dbt,
    warehouse_file,
    write_raw_tables,
)

START = dt.date(2026, 1, 5)
MARTS = (
    "mart_bars_hourly",
    "mart_bars_daily",
    "mart_features",
    "mart_candidate_outcomes",
    "mart_training_set",
    "mart_decision_outcomes",
    "mart_daily_performance",
)


def _timed_dbt(args: list[str], coin_home: Path, work_dir: Path) -> tuple[float, DbtRun]:
    started = time.perf_counter()
    run = run_dbt(args, coin_home, work_dir)
    seconds = time.perf_counter() - started
    if run.returncode != 0:
        sys.exit(f"dbt {' '.join(args)} failed:\n{run.output[-4000:]}")
    return seconds, run


def _counts(run: DbtRun) -> dict[str, object]:
    statuses = run.statuses()
    return {
        "models": sum(1 for uid in statuses if uid.startswith("model.")),
        "tests": sum(1 for uid in statuses if uid.startswith("test.")),
        "dbt_elapsed_s": round(run.results["elapsed_time"], 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--symbols", type=int, default=3)
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()
    if not 1 <= args.symbols <= len(DEFAULT_SYMBOLS):
        parser.error(f"--symbols must be within 1..{len(DEFAULT_SYMBOLS)}")
    if args.days < 2:
        parser.error("--days must be at least 2 (one day is rebuilt incrementally)")
    symbols = list(DEFAULT_SYMBOLS[: args.symbols])
    with tempfile.TemporaryDirectory(prefix="coin-bench-dbt-") as temp:
        coin_home, work_dir = Path(temp) / "home", Path(temp) / "dbt"
        settings = platform_settings(coin_home)
        started = time.perf_counter()
        raw = platform_raw_data(settings, symbols, START, args.days)
        made_s = time.perf_counter() - started
        started = time.perf_counter()
        write_raw_tables(warehouse_file(coin_home), raw)
        loaded_s = time.perf_counter() - started
        fee = {"fee_rate": settings.config.trading.fee_rate}
        parse_s, _ = _timed_dbt(["parse"], coin_home, work_dir)
        build_s, build = _timed_dbt(["build", "--vars", json.dumps(fee)], coin_home, work_dir)
        day = (START + dt.timedelta(days=args.days // 2)).isoformat()
        day_vars = json.dumps({**fee, "min_day": day, "max_day": day})
        incremental_s, incremental = _timed_dbt(
            ["build", "--select", "config.materialized:incremental", "--vars", day_vars], coin_home, work_dir
        )
        with duckdb.connect(str(warehouse_file(coin_home)), read_only=True) as connection:
            mart_rows = {name: connection.sql(f"select count(*) from main.{name}").fetchall()[0][0] for name in MARTS}
    return emit(
        {
            "bench": "dbt_build",
            "params": {
                "days": args.days,
                "symbols": symbols,
                "intervals": list(SUPPORTED_INTERVALS),
                "start": START.isoformat(),
                "target": "local (duckdb)",
            },
            "raw_rows": {name: frame.height for name, frame in raw.tables.items()},
            "make_raw_data_s": round(made_s, 3),
            "load_raw_tables_s": round(loaded_s, 3),
            "dbt_parse_s": round(parse_s, 3),
            "dbt_build_s": round(build_s, 3),
            "dbt_build": _counts(build),
            "incremental_one_day_s": round(incremental_s, 3),
            "incremental_one_day": {"day": day, **_counts(incremental)},
            "mart_rows": mart_rows,
            "note": (
                "wall times include dbt start-up and a full parse (the vars differ between runs); "
                "dbt_elapsed_s is the nodes alone"
            ),
        },
        args.json_out,
    )


if __name__ == "__main__":
    raise SystemExit(main())
