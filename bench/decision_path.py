"""Decision-path benchmark: symbols × days of 1m candles through the whole live decision path.

Every candidate of the configured 1m strategies (config.yaml) is decided by the live scorer and
executed by `execute_decision` (order-time checks, risk guard, paper broker) against an in-memory
trading store: the live code, one candidate at a time. Reference, same process and candles: the
compiled engine (`run_backtest`) on the strategy's raw signals. Reports wall time, candidates,
executions, orders, time per execution, and the process's peak RSS (goal ≤ 2 GB).

    python bench/decision_path.py                       # 10 symbols × 365 days
    python bench/decision_path.py --symbols 2 --days 30
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

from candles import random_walk_candles  # bench/candles.py, beside this script
from report import emit  # bench/report.py, beside this script

from coin_platform.backtest import run_backtest
from coin_platform.backtest.decision_path import run_decision_path
from coin_platform.settings import load_settings
from coin_platform.strategies import build_strategies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--symbols", type=int, default=10)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()

    symbols = [f"SYM{n:02d}USDT" for n in range(args.symbols)]
    candles = random_walk_candles(args.days * 1440, seed=7, symbols=symbols)
    config = load_settings().config
    config = config.model_copy(update={"symbols": tuple(symbols), "intervals": ("1m",)})
    strategies = build_strategies(config.strategies, "1m")

    began = time.perf_counter()
    run = run_decision_path({"1m": candles}, strategies, config)
    decision_path_s = time.perf_counter() - began
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    began = time.perf_counter()
    engine_trades = sum(run_backtest(candles, strategy, interval="1m").trades.height for strategy in strategies)
    engine_s = time.perf_counter() - began

    executions = run.executions.height
    print(f"{args.symbols} symbols × {args.days} days: {decision_path_s:.1f} s", file=sys.stderr)
    return emit(
        {
            "bench": "decision_path",
            "candles": candles.height,
            "symbols": args.symbols,
            "days": args.days,
            "strategies": [s.name for s in strategies],
            "candidates": run.decisions.height,
            "executions": executions,
            "orders": run.orders.height,
            "fills": run.fills.height,
            "statuses": dict(run.executions.group_by("status").len().iter_rows()),
            "decision_path_s": round(decision_path_s, 2),
            "ms_per_execution": round(1000 * decision_path_s / max(executions, 1), 3),
            "peak_rss_mb": round(rss_mb, 1),
            "goal_peak_rss_mb": 2048,
            "reference": {"engine_run_backtest_s": round(engine_s, 3), "engine_trades": engine_trades},
        },
        args.json_out,
    )


if __name__ == "__main__":
    sys.exit(main())
