"""Benchmark: the compiled backtest engine against backtesting.py and vectorbt, EMA(10)/EMA(30) on 1m candles.

Seeded random-walk 1m candles (100,000 and 525,600 rows), fill at the next open, 0.1 % fee
per side, no slippage, all equity in each trade. Measured:

* ours: `simulate` warm (signals precomputed, as vectorbt gets them); `simulate` plus the first
  read of the result's `total_equity` and `trades` (the result builds its frames from the
  kernel's arrays when they are first read, so this is the cost of a result someone looks at);
  `run_backtest` warm (signals included, as backtesting.py computes its own), and cold: importing
  coin_platform.backtest plus the first `run_backtest` in a fresh process (numba loads the
  compiled kernel from its cache; a missing cache costs one compile, a few seconds, once);
* backtesting.py 0.6.6 `lib.FractionalBacktest` with the textbook TA-Lib EMA + crossover
  strategy (`--backtesting-repeats` runs; one at 525,600 is seconds);
* vectorbt 1.2 `Portfolio.from_signals` on our signals shifted a bar with price=open, warm
  and cold (import plus the first call in a fresh process; its numba cache is present once
  it has run on the machine, else the first call compiles for ≈20 s).

Then the sweep: `run_sweep` over 1,000 (fast, slow) EMA pairs on 525,600 candles, end to end,
against vectorbt's from_signals on a signal matrix of a subset of the pairs, extrapolated per
pair (the whole grid would need several GB). Goals: ≤ 10 s and ≥ 3× faster than vectorbt.

Timings are medians of repeats after a warm-up, the functions alternating so machine noise
hits all alike. Trades are compared one by one (times exactly, prices and sizes to 1e-9
relative); the first differing trade is shown side by side. Goals: ours (simulate) ≥ 1,000×
faster than backtesting.py and ≥ 2× faster than vectorbt warm, with identical trades.

Prints one JSON object on stdout and nothing else.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
from candles import random_walk_candles  # bench/candles.py, beside this script
from report import emit  # bench/report.py, beside this script

FEE = 0.001
# EMA(10/30) on 1m trades ~19,000 times a year; at 0.2 % a round trip that shrinks the equity by e^-38, so
# the cash must be large enough that vectorbt's 1e-8 min_size (and backtesting.py's 1e-8 units) never bite.
CASH = 1e12
FAST, SLOW = 10, 30
BACKTESTING_UNIT = 1e-8  # FractionalBacktest's default fractional_unit
GOAL_VS_BACKTESTING = 1_000.0
GOAL_VS_VECTORBT = 2.0
CONVENTIONS = {
    "signal": "EMA(10) crosses EMA(30) on the close: up enters long / exits short, down the reverse",
    "fill": "next bar's open; ours slippage=0 (backtesting.py's spread is entry-only)",
    "fee": "0.1 % of the fill notional per side",
    "size": "all equity, fractional: ours EquityFraction(1.0), backtesting.py FractionalBacktest default size "
    "(1e-8 units), vectorbt size=inf",
    "backtesting.py": "trade_on_close=False, exclusive_orders=True (a new order closes the open trade), "
    "finalize_trades=False: its finalize closes at the last bar's open, ours at the last close, so its closed "
    "trades are compared with ours less the end_of_data one",
    "vectorbt": "from_signals on numpy arrays (its fastest input; a tz-aware DatetimeIndex makes it ~30x slower): "
    "entries/exits/short_entries/short_exits = our signals shifted one bar, price=open, fees=0.001; its still-open "
    "last trade is valued at the last close, as our end_of_data exit",
    "cash": "1e12 for all three: ~19,000 trades at 0.2 % a round trip shrink the equity by e^-38, and vectorbt's "
    "min_size (1e-8) or backtesting.py's 1e-8 units must never bite",
    "comparison": "times and sides exactly; prices to 1e-9 relative; sizes to 1e-9 relative, or one 1e-8 unit "
    "for backtesting.py, which rounds sizes down to whole units",
}


def strategy():
    from coin_platform.strategies import EmaCrossover

    return EmaCrossover(name=f"ema_{FAST}_{SLOW}", fast=FAST, slow=SLOW)


def median_seconds(*funcs: Callable[[], object], repeats: int) -> list[float]:
    """Median wall time of each function; runs alternate so machine noise hits all alike."""
    for func in funcs:  # warm-up
        func()
    times: list[list[float]] = [[] for _ in funcs]
    for _ in range(repeats):
        for func, bucket in zip(funcs, times, strict=True):
            start = time.perf_counter()
            func()
            bucket.append(time.perf_counter() - start)
    return [statistics.median(bucket) for bucket in times]


# --- the references -----------------------------------------------------------------------------------


def vectorbt_portfolio(arrays: dict[str, np.ndarray]):
    import vectorbt as vbt

    return vbt.Portfolio.from_signals(
        close=arrays["close"],
        entries=arrays["enter_long"],
        exits=arrays["exit_long"],
        short_entries=arrays["enter_short"],
        short_exits=arrays["exit_short"],
        price=arrays["open"],
        fees=FEE,
        init_cash=CASH,
    )


def vectorbt_input(frame: pl.DataFrame) -> dict[str, np.ndarray]:
    """Prices and our signals shifted one bar: vectorbt fills a signal on the bar it is on, at `price`."""
    signals = ("enter_long", "exit_long", "enter_short", "exit_short")
    return {
        "open": frame["open"].to_numpy(),
        "close": frame["close"].to_numpy(),
        **{s: frame[s].shift(1, fill_value=False).to_numpy() for s in signals},
    }


def vectorbt_trades(portfolio, open_time: pl.Series) -> pl.DataFrame:
    records = portfolio.trades.records
    return pl.DataFrame(
        {
            "side": np.where(records["direction"] == 0, "long", "short"),
            "entry_time": open_time.gather(np.ascontiguousarray(records["entry_idx"], dtype=np.int64)),
            "entry_price": np.ascontiguousarray(records["entry_price"]),
            "exit_time": open_time.gather(np.ascontiguousarray(records["exit_idx"], dtype=np.int64)),
            "exit_price": np.ascontiguousarray(records["exit_price"]),
            "size": np.ascontiguousarray(records["size"]),
        }
    )


def backtesting_run(candles: pl.DataFrame):
    import talib
    from backtesting import Strategy
    from backtesting.lib import FractionalBacktest, crossover

    class EmaCross(Strategy):
        def init(self):
            self.fast = self.I(talib.EMA, self.data.Close, FAST)
            self.slow = self.I(talib.EMA, self.data.Close, SLOW)

        def next(self):
            if crossover(self.fast, self.slow):
                self.buy()
            elif crossover(self.slow, self.fast):
                self.sell()

    ohlcv = candles.select(Open="open", High="high", Low="low", Close="close", Volume="volume").to_pandas()
    ohlcv.index = pd.DatetimeIndex(candles["open_time"].dt.replace_time_zone(None).to_numpy())
    test = FractionalBacktest(
        ohlcv,
        EmaCross,
        cash=CASH,
        commission=FEE,
        trade_on_close=False,
        exclusive_orders=True,
        finalize_trades=False,
        fractional_unit=BACKTESTING_UNIT,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # trades left open at the end: finalize_trades=False, on purpose
        return test.run()


def backtesting_trades(stats) -> pl.DataFrame:
    trades = stats["_trades"]
    return pl.DataFrame(
        {
            "side": np.where(trades["Size"] > 0, "long", "short"),
            "entry_time": trades["EntryTime"].to_numpy(),
            "entry_price": trades["EntryPrice"].to_numpy(),
            "exit_time": trades["ExitTime"].to_numpy(),
            "exit_price": trades["ExitPrice"].to_numpy(),
            "size": trades["Size"].abs().to_numpy(),
        }
    ).with_columns(pl.col("entry_time", "exit_time").cast(pl.Datetime("ms")).dt.replace_time_zone("UTC"))


# --- comparison ---------------------------------------------------------------------------------------

COMPARED = ["side", "entry_time", "entry_price", "exit_time", "exit_price", "size"]


def compare_trades(ours: pl.DataFrame, reference: pl.DataFrame, size_unit: float = 0.0) -> dict[str, object]:
    """Whether the trades agree (times and sides exactly, prices to 1e-9 relative, sizes to 1e-9 relative
    or `size_unit`), and the first that does not, side by side."""
    ours = ours.select(COMPARED)
    for index in range(max(ours.height, reference.height)):
        mine = ours.row(index, named=True) if index < ours.height else None
        theirs = reference.row(index, named=True) if index < reference.height else None
        if not _same_trade(mine, theirs, size_unit):
            return {
                "identical": False,
                "first_difference": {"index": index, "ours": _jsonable(mine), "reference": _jsonable(theirs)},
            }
    return {"identical": True, "first_difference": None}


def _same_trade(mine: dict | None, theirs: dict | None, size_unit: float) -> bool:
    if mine is None or theirs is None:
        return mine is theirs
    exact = all(mine[k] == theirs[k] for k in ("side", "entry_time", "exit_time"))
    prices = all(np.isclose(mine[k], theirs[k], rtol=1e-9, atol=0) for k in ("entry_price", "exit_price"))
    return exact and prices and bool(np.isclose(mine["size"], theirs["size"], rtol=1e-9, atol=size_unit))


def _jsonable(trade: dict | None) -> dict | None:
    if trade is None:
        return None
    return {k: v.isoformat() if isinstance(v, dt.datetime) else v for k, v in trade.items()}


# --- cold starts, each in a fresh process -------------------------------------------------------------


def probe(which: str, rows: int) -> dict[str, float]:
    """Runs in the child process: the candles are made first (untimed), then the import and first call."""
    candles = random_walk_candles(rows, seed=1)
    if which == "ours":
        started = time.perf_counter()
        from coin_platform.backtest import run_backtest

        imported = time.perf_counter()
        run_backtest(candles, strategy(), fee=FEE, slippage=0.0, initial_cash=CASH)
    else:
        from coin_platform.backtest import strategy_signals

        arrays = vectorbt_input(strategy_signals(candles, strategy())[0])
        started = time.perf_counter()
        import vectorbt  # noqa: F401

        imported = time.perf_counter()
        vectorbt_portfolio(arrays)
    done = time.perf_counter()
    return {
        "import_s": round(imported - started, 3),
        "first_call_s": round(done - imported, 3),
        "cold_s": round(done - started, 3),
    }


def cold(which: str, rows: int) -> dict[str, float]:
    completed = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--probe", which, "--rows", str(rows)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(completed.stdout)


# --- the sweep ----------------------------------------------------------------------------------------

SWEEP_FAST = range(5, 55)  # 50 periods
SWEEP_SLOW = range(60, 260, 10)  # 20 periods: 1,000 (fast, slow) pairs
GOAL_SWEEP_S = 10.0
GOAL_SWEEP_VS_VECTORBT = 3.0


def bench_sweep(rows: int, vectorbt_pairs: int) -> dict[str, object]:
    """run_sweep over 1,000 EMA pairs end to end (EMAs, signals, simulation, metrics) against vectorbt's
    from_signals on a signal matrix of the first `vectorbt_pairs` pairs (our signals, shifted a bar;
    building them is not timed), plus its total return and Sharpe ratio, extrapolated per pair."""
    import vectorbt as vbt

    from coin_platform.backtest import run_sweep
    from coin_platform.indicators import ema

    candles = random_walk_candles(rows, seed=1)
    grid = {"fast": list(SWEEP_FAST), "slow": list(SWEEP_SLOW)}
    pairs = len(SWEEP_FAST) * len(SWEEP_SLOW)
    run_sweep(candles.head(2_000), "ema_crossover", {"fast": [5], "slow": [60]})  # load the compiled kernels
    started = time.perf_counter()
    sweep = run_sweep(candles, "ema_crossover", grid, fee=FEE, slippage=0.0, initial_cash=CASH)
    ours_s = time.perf_counter() - started

    subset = [(f, s) for f in SWEEP_FAST for s in SWEEP_SLOW][:vectorbt_pairs]
    periods = sorted({p for pair in subset for p in pair})
    lines = candles.select(ema("close", p).alias(str(p)) for p in periods)
    fast = np.column_stack([lines[str(f)].to_numpy() for f, _ in subset])
    slow = np.column_stack([lines[str(s)].to_numpy() for _, s in subset])
    with np.errstate(invalid="ignore"):
        up = np.zeros_like(fast, dtype=bool)
        down = np.zeros_like(fast, dtype=bool)
        up[1:] = (fast[:-1] < slow[:-1]) & (fast[1:] >= slow[1:])
        down[1:] = (fast[:-1] > slow[:-1]) & (fast[1:] <= slow[1:])
    entries, exits = np.zeros_like(up), np.zeros_like(down)  # shifted a bar: filled at the next open
    entries[1:], exits[1:] = up[:-1], down[:-1]
    close, open_ = candles["close"].to_numpy()[:, None], candles["open"].to_numpy()[:, None]  # one column, broadcast

    def vectorbt_sweep():
        portfolio = vbt.Portfolio.from_signals(
            close=close, entries=entries, exits=exits, short_entries=exits, short_exits=entries, price=open_,
            fees=FEE, init_cash=CASH, freq="1min",
        )  # fmt: skip
        return portfolio.total_return(), portfolio.sharpe_ratio()

    vectorbt_sweep()  # warm
    started = time.perf_counter()
    total_return, _ = vectorbt_sweep()
    vectorbt_s = time.perf_counter() - started
    vectorbt_full_s = vectorbt_s / len(subset) * pairs
    ours = sweep.results.filter(pl.struct("fast", "slow").is_in([{"fast": f, "slow": s} for f, s in subset]))
    difference = np.abs(ours["total_return_pct"].to_numpy() - np.asarray(total_return) * 100)
    return {
        "rows": rows,
        "pairs": pairs,
        "grid": {
            "fast": f"{SWEEP_FAST.start}..{SWEEP_FAST.stop - 1}",
            "slow": f"{SWEEP_SLOW.start}..{SWEEP_SLOW.stop - 10} step {SWEEP_SLOW.step}",
        },
        "ours_s": round(ours_s, 3),
        "ours_per_pair_ms": round(ours_s / pairs * 1e3, 3),
        "numba_threads": sweep_threads(),
        "best_by_sharpe": sweep.best,
        "vectorbt": {
            "pairs_measured": len(subset),
            "measured_s": round(vectorbt_s, 3),
            "extrapolated_full_grid_s": round(vectorbt_full_s, 3),
            "why_extrapolated": f"the full grid is {pairs} columns of {rows} bars: four signal matrices of "
            f"{4 * rows * pairs / 1e9:.1f} GB and float price/cash broadcasts of {8 * rows * pairs / 1e9:.1f} GB each",
            "timed": "from_signals on our signals (matrix building not timed) + total_return + sharpe_ratio",
            "total_return_pct_max_abs_difference_on_subset": float(difference.max()),
            "difference_note": "vectorbt leaves the last trade open (no exit fee); ours closes it at the last close",
        },
        "speedup_vs_vectorbt": round(vectorbt_full_s / ours_s, 2),
        "goals_met": {
            "at_most_10_s": bool(ours_s <= GOAL_SWEEP_S),
            "vs_vectorbt_3x": bool(vectorbt_full_s / ours_s >= GOAL_SWEEP_VS_VECTORBT),
        },
    }


def sweep_threads() -> int:
    import numba

    return numba.get_num_threads()


# --- the benchmark ------------------------------------------------------------------------------------


def bench_rows(rows: int, repeats: int, backtesting_repeats: int) -> dict[str, object]:
    from coin_platform.backtest import run_backtest, simulate, strategy_signals

    candles = random_walk_candles(rows, seed=1)
    frame, _ = strategy_signals(candles, strategy())
    vbt_arrays = vectorbt_input(frame)

    def ours_simulate():
        return simulate(frame, fee=FEE, slippage=0.0, initial_cash=CASH)

    def ours_simulate_and_read():
        result = simulate(frame, fee=FEE, slippage=0.0, initial_cash=CASH)
        return result.total_equity, result.trades  # built on first access

    def ours_run():
        return run_backtest(candles, strategy(), fee=FEE, slippage=0.0, initial_cash=CASH)

    simulate_s, read_s, run_s, vectorbt_s = median_seconds(
        ours_simulate, ours_simulate_and_read, ours_run, lambda: vectorbt_portfolio(vbt_arrays), repeats=repeats
    )
    backtesting_times = []
    for _ in range(backtesting_repeats):
        started = time.perf_counter()
        stats = backtesting_run(candles)
        backtesting_times.append(time.perf_counter() - started)
    backtesting_s = statistics.median(backtesting_times)

    result = ours_simulate()
    ours = result.trades
    portfolio = vectorbt_portfolio(vbt_arrays)
    vs_vectorbt = compare_trades(ours, vectorbt_trades(portfolio, frame["open_time"]))
    closed = ours.filter(pl.col("exit_reason") != "end_of_data")
    vs_backtesting = compare_trades(closed, backtesting_trades(stats), size_unit=BACKTESTING_UNIT)
    speedup_backtesting = backtesting_s / simulate_s
    speedup_vectorbt = vectorbt_s / simulate_s
    return {
        "rows": rows,
        "ours": {
            "simulate_warm_ms": round(simulate_s * 1e3, 3),
            "simulate_and_first_read_ms": round(read_s * 1e3, 3),
            "run_backtest_warm_ms": round(run_s * 1e3, 3),
            "cold": cold("ours", rows),
            "trades": ours.height,
            "total_return_pct": round((result.total_equity["equity"][-1] / CASH - 1) * 100, 6),
        },
        "backtesting_py": {
            "seconds": round(backtesting_s, 3),
            "runs": backtesting_repeats,
            "closed_trades": len(stats["_trades"]),
            "total_return_pct": round(float(stats["Return [%]"]), 6),
            "trades_vs_ours": vs_backtesting,
        },
        "vectorbt": {
            "warm_ms": round(vectorbt_s * 1e3, 3),
            "cold": cold("vectorbt", rows),
            "trades": len(portfolio.trades.records),
            "total_return_pct": round(float(portfolio.total_return()) * 100, 6),
            "trades_vs_ours": vs_vectorbt,
        },
        "total_return_note": "backtesting.py and vectorbt value the last open trade at the last close without "
        "its exit fee; ours closes it (end_of_data) and pays the fee",
        "speedup": {
            "simulate_vs_backtesting_py": round(speedup_backtesting, 1),
            "simulate_and_first_read_vs_backtesting_py": round(backtesting_s / read_s, 1),
            "run_backtest_vs_backtesting_py": round(backtesting_s / run_s, 1),
            "simulate_vs_vectorbt_warm": round(speedup_vectorbt, 2),
        },
        "goals_met": {
            "vs_backtesting_py": bool(speedup_backtesting >= GOAL_VS_BACKTESTING),
            "vs_vectorbt_warm": bool(speedup_vectorbt >= GOAL_VS_VECTORBT),
            "identical_trades": bool(vs_backtesting["identical"] and vs_vectorbt["identical"]),
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 525_600])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--backtesting-repeats", type=int, default=1, help="backtesting.py runs per size")
    parser.add_argument("--sweep-rows", type=int, default=525_600, help="candles of the 1,000-pair sweep; 0 skips it")
    parser.add_argument("--vectorbt-sweep-pairs", type=int, default=40, help="pairs vectorbt runs, then extrapolated")
    parser.add_argument("--json-out", type=Path, help="also write the JSON result to this file")
    parser.add_argument("--probe", choices=["ours", "vectorbt"], help=argparse.SUPPRESS)  # the cold-start child
    args = parser.parse_args(argv)
    if args.probe:
        print(json.dumps(probe(args.probe, args.rows[0])))
        return 0

    import backtesting
    import numba
    import vectorbt

    sizes = [bench_rows(rows, args.repeats, args.backtesting_repeats) for rows in args.rows]
    sweep = bench_sweep(args.sweep_rows, args.vectorbt_sweep_pairs) if args.sweep_rows else None
    result = {
        "bench": "backtest",
        "strategy": f"EMA({FAST})/EMA({SLOW}) crossover, long and short",
        "versions": {
            "backtesting": backtesting.__version__,
            "vectorbt": vectorbt.__version__,
            "numba": numba.__version__,
            "polars": pl.__version__,
        },
        "conventions": CONVENTIONS,
        "timing": "median of repeats after one warm-up (ms); backtesting.py: median of its runs (s); "
        "cold: a fresh process, import + first call; simulate_and_first_read: simulate, then its result's "
        "total_equity and trades read once (they are built on first access)",
        "goals": {
            "simulate_vs_backtesting_py_min": GOAL_VS_BACKTESTING,
            "simulate_vs_vectorbt_warm_min": GOAL_VS_VECTORBT,
            "identical_trades": True,
            "sweep_1000_pairs_max_s": GOAL_SWEEP_S,
            "sweep_vs_vectorbt_min": GOAL_SWEEP_VS_VECTORBT,
        },
        "sizes": sizes,
        "sweep": sweep,
        "goals_met": bool(
            all(all(size["goals_met"].values()) for size in sizes)
            and (sweep is None or all(sweep["goals_met"].values()))
        ),
    }
    return emit(result, args.json_out)


if __name__ == "__main__":
    sys.exit(main())
