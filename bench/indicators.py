"""Benchmark: coin_platform.indicators (polars expressions) against TA-Lib in the same process.

The five indicators (RSI 14, EMA 20, MACD 12/26/9, Bollinger 20/2, ATR 14) on
  (a) one symbol of 525,600 and 2,000,000 rows;
  (b) 20 symbols x 100,000 rows in one long frame: ours with ``.over("symbol")``,
      TA-Lib called per symbol in a Python loop (partition_by, TA-Lib on each
      part's numpy columns, results attached, parts concatenated — what users do
      to get a frame back). The loop's bare compute time (no frame rebuilt) is
      reported as well.
Goals: (a) ours <= 1.2 x TA-Lib, (b) ours <= the TA-Lib loop, both with exact
parity (max relative error and null masks checked on every output).

Prints one JSON object on stdout and nothing else.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import polars as pl
import talib
from candles import random_walk_candles  # bench/candles.py, beside this script
from report import emit  # bench/report.py, beside this script

from coin_platform.indicators import atr, bollinger, ema, macd, rsi

OUTPUTS = [
    "rsi_14",
    "ema_20",
    "macd",
    "macd_signal",
    "macd_hist",
    "bb_upper",
    "bb_middle",
    "bb_lower",
    "atr_14",
]


COLUMNS = ("high", "low", "close", "volume")  # what the indicators read


def single_frame(rows: int, seed: int = 1) -> pl.DataFrame:
    return random_walk_candles(rows, seed).select(COLUMNS)


def long_frame(symbols: int, rows: int) -> pl.DataFrame:
    frame = random_walk_candles(rows, 100, symbols=[f"SYM{i:02d}USDT" for i in range(symbols)])
    return frame.select(pl.col("symbol").cast(pl.Categorical), *COLUMNS)


def our_exprs() -> list[pl.Expr]:
    return [
        rsi("close", 14),
        ema("close", 20),
        macd("close", 12, 26, 9),
        bollinger("close", 20, 2.0),
        atr("high", "low", "close", 14),
    ]


def ours(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(our_exprs())


def ours_over(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns([e.over("symbol") for e in our_exprs()])


def talib_arrays(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> dict[str, np.ndarray]:
    m, s, h = talib.MACD(close, 12, 26, 9)
    up, mid, lo = talib.BBANDS(close, 20, 2.0, 2.0, 0)
    return {
        "rsi_14": talib.RSI(close, 14),
        "ema_20": talib.EMA(close, 20),
        "macd": m,
        "macd_signal": s,
        "macd_hist": h,
        "bb_upper": up,
        "bb_middle": mid,
        "bb_lower": lo,
        "atr_14": talib.ATR(high, low, close, 14),
    }


def talib_single(frame: pl.DataFrame) -> dict[str, np.ndarray]:
    return talib_arrays(*(frame.get_column(c).to_numpy() for c in ("high", "low", "close")))


def talib_loop_compute(frame: pl.DataFrame) -> list[dict[str, np.ndarray]]:
    return [
        talib_arrays(*(part.get_column(c).to_numpy() for c in ("high", "low", "close")))
        for part in frame.partition_by("symbol", maintain_order=True)
    ]


def talib_loop_frame(frame: pl.DataFrame) -> pl.DataFrame:
    parts = []
    for part in frame.partition_by("symbol", maintain_order=True):
        result = talib_arrays(*(part.get_column(c).to_numpy() for c in ("high", "low", "close")))
        parts.append(part.with_columns(pl.Series(k, v, nan_to_null=True) for k, v in result.items()))
    return pl.concat(parts)


def flatten_ours(frame: pl.DataFrame) -> dict[str, np.ndarray]:
    flat = frame.select(
        pl.col("rsi_14"),
        pl.col("ema_20"),
        pl.col("macd_12_26_9").struct.field("macd"),
        pl.col("macd_12_26_9").struct.field("signal").alias("macd_signal"),
        pl.col("macd_12_26_9").struct.field("hist").alias("macd_hist"),
        pl.col("bollinger_20_2").struct.field("upper").alias("bb_upper"),
        pl.col("bollinger_20_2").struct.field("middle").alias("bb_middle"),
        pl.col("bollinger_20_2").struct.field("lower").alias("bb_lower"),
        pl.col("atr_14"),
    )
    return {name: flat.get_column(name).to_numpy() for name in OUTPUTS}


def parity(ours_values: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> tuple[float, bool]:
    """Max relative error over all outputs, and whether null masks equal TA-Lib's NaN masks."""
    worst = 0.0
    masks = True
    for name in OUTPUTS:
        got, want = ours_values[name], reference[name]
        got_nan, want_nan = np.isnan(got), np.isnan(want)
        masks &= bool(np.array_equal(got_nan, want_nan))
        both = ~got_nan & ~want_nan
        if both.any():
            err = np.abs(got[both] - want[both]) / np.maximum(np.abs(want[both]), 1e-300)
            worst = max(worst, float(err.max()))
    return worst, masks


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


def bench_single(rows: int, repeats: int) -> dict[str, object]:
    frame = single_frame(rows)
    ours_s, talib_s = median_seconds(lambda: ours(frame), lambda: talib_single(frame), repeats=repeats)
    err, masks = parity(flatten_ours(ours(frame)), talib_single(frame))
    ratio = ours_s / talib_s
    return {
        "rows": rows,
        "ours_ms": round(ours_s * 1e3, 3),
        "talib_ms": round(talib_s * 1e3, 3),
        "ratio": round(ratio, 3),
        "parity_max_rel_err": err,
        "null_masks_equal": masks,
        "goal": "ours <= 1.2 x talib, exact parity",
        "goal_met": bool(ratio <= 1.2 and err <= 1e-9 and masks),
    }


def bench_long(symbols: int, rows: int, repeats: int) -> dict[str, object]:
    frame = long_frame(symbols, rows)
    identity = pl.col("close").map_batches(lambda s: s, return_dtype=pl.Float64).over("symbol")
    ours_s, loop_frame_s, loop_compute_s, identity_s = median_seconds(
        lambda: ours_over(frame),
        lambda: talib_loop_frame(frame),
        lambda: talib_loop_compute(frame),
        lambda: frame.with_columns(identity.alias("identity")),
        repeats=repeats,
    )

    # Parity: per symbol, ours (over the long frame) against TA-Lib on that symbol alone.
    result = ours_over(frame)
    flat = flatten_ours(result)
    symbol = result.get_column("symbol").to_numpy()
    reference: dict[str, list[np.ndarray]] = {name: [] for name in OUTPUTS}
    got: dict[str, list[np.ndarray]] = {name: [] for name in OUTPUTS}
    for part, arrays in zip(frame.partition_by("symbol", maintain_order=True), talib_loop_compute(frame), strict=True):
        rows_of = symbol == part.get_column("symbol")[0]
        for name in OUTPUTS:
            reference[name].append(arrays[name])
            got[name].append(flat[name][rows_of])
    err, masks = parity(
        {k: np.concatenate(v) for k, v in got.items()},
        {k: np.concatenate(v) for k, v in reference.items()},
    )
    ratio = ours_s / loop_frame_s
    return {
        "symbols": symbols,
        "rows_per_symbol": rows,
        "ours_over_ms": round(ours_s * 1e3, 3),
        "talib_loop_ms": round(loop_frame_s * 1e3, 3),
        "talib_loop_compute_only_ms": round(loop_compute_s * 1e3, 3),
        "polars_over_identity_udf_ms": round(identity_s * 1e3, 3),
        "ratio": round(ratio, 3),
        "ratio_vs_compute_only": round(ours_s / loop_compute_s, 3),
        "parity_max_rel_err": err,
        "null_masks_equal": masks,
        "goal": "ours <= talib loop (partition_by, TA-Lib per symbol, frame rebuilt), exact parity",
        "goal_met": bool(ratio <= 1.0 and err <= 1e-9 and masks),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[525_600, 2_000_000])
    parser.add_argument("--symbols", type=int, default=20)
    parser.add_argument("--rows-per-symbol", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()

    single = [bench_single(rows, args.repeats) for rows in args.rows]
    long = bench_long(args.symbols, args.rows_per_symbol, args.repeats)
    result = {
        "bench": "indicators",
        "indicators": ["RSI(14)", "EMA(20)", "MACD(12,26,9)", "BBANDS(20,2)", "ATR(14)"],
        "talib_version": talib.__version__,
        "polars_version": pl.__version__,
        "repeats": args.repeats,
        "timing": "median seconds of repeats after one warm-up, reported in ms",
        "single_symbol": single,
        "multi_symbol": long,
        "goals_met": bool(all(s["goal_met"] for s in single) and long["goal_met"]),
    }
    emit(result)


if __name__ == "__main__":
    main()
