"""Backtest metrics and report benchmark: a year of 1m bars per symbol through compute_metrics and render_report.

The input is a real engine result: bench/candles.py's seeded random-walk candles of each symbol
through `run_backtest` with an EMA(`--fast`)/EMA(`--slow`) crossover (0.1 % fee, equity marked at
every close), so the report is measured on the frames a backtest run hands it. The backtest
itself is not timed (bench/backtest.py times the engine). Times are the median of `--repeats` runs
after one warm-up. Sizes: the HTML page (goal: a few MB whatever the bar count, since
charts are capped at MAX_POINTS_PER_SERIES points per series and MAX_TRADES_SHOWN
trades) and each PNG (goal: < 150 KB, to embed in Dagster markdown metadata).
Only the JSON result goes to stdout.

    python bench/backtest_report.py                    # 525,600 bars x 2 symbols
    python bench/backtest_report.py --bars 100000 --symbols 4 --fast 50 --slow 200
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from candles import random_walk_candles  # bench/candles.py, beside this script
from report import emit  # bench/report.py, beside this script

from coin_platform.backtest import run_backtest
from coin_platform.backtest.metrics import compute_metrics, metrics_by_symbol
from coin_platform.backtest.report import MAX_POINTS_PER_SERIES, MAX_TRADES_SHOWN, render_report
from coin_platform.strategies import EmaCrossover

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "ADAUSDT", "BNBUSDT", "DOGEUSDT", "LTCUSDT")
GOAL_PNG_BYTES = 150_000
CASH_PER_SYMBOL = 10_000.0
FEE = 0.001
SEED = 1


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=525_600, help="1m bars per symbol")
    parser.add_argument("--symbols", type=int, default=2, help=f"symbols (at most {len(SYMBOLS)})")
    parser.add_argument("--fast", type=int, default=20, help="the fast EMA's period")
    parser.add_argument("--slow", type=int, default=50, help="the slow EMA's period")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per measurement")
    parser.add_argument("--json-out", type=Path, help="also write the JSON result to this file")
    args = parser.parse_args(argv)
    if not 1 <= args.symbols <= len(SYMBOLS):
        parser.error(f"--symbols must be between 1 and {len(SYMBOLS)}")
    if min(args.bars, args.repeats, args.fast) < 1 or args.slow <= args.fast:
        parser.error("--bars, --repeats and --fast must be positive and --slow above --fast")
    return args


def median_ms(run: Callable[[], object], repeats: int) -> tuple[float, object]:
    """Median wall time of `run` after one warm-up, and what the warm-up returned."""
    result = run()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 2), result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    symbols = SYMBOLS[: args.symbols]
    candles = random_walk_candles(args.bars, SEED, symbols=symbols)
    strategy = EmaCrossover(name=f"ema_{args.fast}_{args.slow}", fast=args.fast, slow=args.slow)
    result = run_backtest(candles, strategy, fee=FEE, initial_cash=CASH_PER_SYMBOL * len(symbols), interval="1m")
    cash = dict.fromkeys(symbols, CASH_PER_SYMBOL)
    total = result.total_equity.select("open_time", "equity")
    metrics_ms, _ = median_ms(lambda: compute_metrics(result.trades, total, sum(cash.values())), args.repeats)
    by_symbol_ms, _ = median_ms(lambda: metrics_by_symbol(result.trades, result.equity, cash), args.repeats)
    render_ms, report = median_ms(lambda: render_report(result, title="bench", candles=candles), args.repeats)
    png_bytes = {name: len(png) for name, png in report.pngs.items()}
    return emit(
        {
            "bench": "backtest_report",
            "params": {
                "bars_per_symbol": args.bars,
                "symbols": list(symbols),
                "strategy": strategy.name,
                "fee": FEE,
                "seed": SEED,
                "repeats": args.repeats,
            },
            "trades": result.trades.height,
            "compute_metrics_ms": metrics_ms,
            "metrics_by_symbol_ms": by_symbol_ms,
            "render_report_ms": render_ms,
            "html_bytes": len(report.html.encode()),
            "max_points_per_series": MAX_POINTS_PER_SERIES,
            "trades_shown": min(result.trades.height, MAX_TRADES_SHOWN),
            "png_bytes": png_bytes,
            "pngs_within_goal": max(png_bytes.values()) < GOAL_PNG_BYTES,
        },
        args.json_out,
    )


if __name__ == "__main__":
    raise SystemExit(main())
