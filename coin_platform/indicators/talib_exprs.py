"""TA-Lib indicators wrapped as polars expressions.

TA-Lib (PyPI ``ta-lib``, the C library bundled in the wheel) computes every
value here; this module only moves columns in and out of it. Each function
returns a ``pl.Expr`` built with ``map_batches``, so:

* the function sees the whole column (or, under ``.over("symbol")``, the rows of
  one symbol at a time, in frame order) and the result is put back in the
  frame's row order;
* the output is Float64 (or a struct of Float64 fields) with a **null wherever
  TA-Lib returns NaN** (the warm-up rows, and anything TA-Lib poisons after a
  NaN/null input);
* rows must be sorted by time within each symbol. Rows of different symbols may
  be interleaved in any way; ``.over("symbol")`` picks each symbol's rows in
  their frame order. Nothing here sorts for you.

Default output names are descriptive (``ema_20``, ``rsi_14``, ...) so
``df.with_columns(ema("close", 20))`` never overwrites ``close``; rename with
``.alias``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import talib

IntoExpr = str | pl.Expr

MACD_FIELDS = ("macd", "signal", "hist")
BOLLINGER_FIELDS = ("upper", "middle", "lower")


def _col(value: IntoExpr) -> pl.Expr:
    return pl.col(value) if isinstance(value, str) else value


def _as_float_array(series: pl.Series) -> np.ndarray:
    """A contiguous float64 numpy view of the series; nulls become NaN (TA-Lib's missing value)."""
    if series.dtype != pl.Float64:
        series = series.cast(pl.Float64)
    return np.ascontiguousarray(series.to_numpy(), dtype=np.float64)


def _nan_prefix_length(values: np.ndarray) -> int:
    """Length of the leading run of NaN (TA-Lib's warm-up) — found without scanning the tail."""
    n = len(values)
    if n == 0 or not np.isnan(values[0]):
        return 0
    # Warm-up lengths are small; look at growing windows until a non-NaN shows up.
    width = 64
    start = 0
    while start < n:
        stop = min(n, start + width)
        finite = np.flatnonzero(~np.isnan(values[start:stop]))
        if len(finite):
            return start + int(finite[0])
        start = stop
        width *= 4
    return n


def _validity_bitmap(n: int, prefix: int) -> np.ndarray:
    """Arrow validity bitmap (LSB first): the first `prefix` rows null, the rest valid."""
    bitmap = np.full((n + 7) // 8, 0xFF, dtype=np.uint8)
    whole, rest = divmod(prefix, 8)
    bitmap[:whole] = 0
    if rest:
        bitmap[whole] = (0xFF << rest) & 0xFF
    return bitmap


def _to_series(name: str, values: np.ndarray) -> pl.Series:
    """TA-Lib output -> Float64 series with a null exactly where TA-Lib has NaN.

    TA-Lib's NaN are normally just its leading warm-up rows. The tail after that
    prefix is checked in one BLAS pass (a dot product is finite only if every
    value is); when it is clean the validity bitmap comes from the prefix length,
    otherwise (NaN/null inputs, overflow) every value is converted on its own.
    """
    n = len(values)
    prefix = _nan_prefix_length(values)
    tail = values[prefix:]
    if not np.isfinite(tail @ tail):
        return pl.Series(name, values, nan_to_null=True)
    if prefix == 0:
        return pl.Series(name, values)
    array = pa.Array.from_buffers(
        pa.float64(),
        n,
        [pa.py_buffer(_validity_bitmap(n, prefix)), pa.py_buffer(values)],
        null_count=prefix,
    )
    return pl.Series(name, array)


def _single(func: Callable[..., Any], fields: tuple[str, ...] | None, kwargs: dict[str, Any]):
    """Batch function: one input column -> TA-Lib -> series (or struct of `fields`)."""

    def apply(series: pl.Series) -> pl.Series:
        out = func(_as_float_array(series), **kwargs)
        if fields is None:
            return _to_series(series.name, out)
        columns = [_to_series(field, column) for field, column in zip(fields, out, strict=True)]
        return pl.DataFrame(columns).to_struct(series.name)

    return apply


def _multi(func: Callable[..., Any], inputs: tuple[str, ...], kwargs: dict[str, Any]):
    """Batch function: a struct of input columns -> TA-Lib -> series."""

    def apply(series: pl.Series) -> pl.Series:
        frame = series.struct.unnest()
        arrays = [_as_float_array(frame.get_column(name)) for name in inputs]
        return _to_series(series.name, func(*arrays, **kwargs))

    return apply


def _check_period(name: str, period: int, minimum: int = 2) -> None:
    if not isinstance(period, int) or isinstance(period, bool) or period < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {period!r}")


def sma(close: IntoExpr, period: int) -> pl.Expr:
    """Simple moving average (talib.SMA); first valid row is `period - 1`."""
    _check_period("period", period)
    return (
        _col(close)
        .map_batches(_single(talib.SMA, None, {"timeperiod": period}), return_dtype=pl.Float64)
        .alias(f"sma_{period}")
    )


def ema(close: IntoExpr, period: int) -> pl.Expr:
    """Exponential moving average (talib.EMA): seeded with the SMA of the first `period` values."""
    _check_period("period", period)
    return (
        _col(close)
        .map_batches(_single(talib.EMA, None, {"timeperiod": period}), return_dtype=pl.Float64)
        .alias(f"ema_{period}")
    )


def rsi(close: IntoExpr, period: int = 14) -> pl.Expr:
    """Relative strength index (talib.RSI, Wilder smoothing); first valid row is `period`."""
    _check_period("period", period)
    return (
        _col(close)
        .map_batches(_single(talib.RSI, None, {"timeperiod": period}), return_dtype=pl.Float64)
        .alias(f"rsi_{period}")
    )


def macd(close: IntoExpr, fast: int = 12, slow: int = 26, signal: int = 9) -> pl.Expr:
    """MACD (talib.MACD) as a struct {macd, signal, hist}; first valid row is `slow + signal - 2`."""
    _check_period("fast", fast)
    _check_period("slow", slow)
    _check_period("signal", signal, minimum=1)
    dtype = pl.Struct({field: pl.Float64 for field in MACD_FIELDS})
    kwargs = {"fastperiod": fast, "slowperiod": slow, "signalperiod": signal}
    return (
        _col(close)
        .map_batches(_single(talib.MACD, MACD_FIELDS, kwargs), return_dtype=dtype)
        .alias(f"macd_{fast}_{slow}_{signal}")
    )


def bollinger(close: IntoExpr, period: int = 20, k: float = 2.0) -> pl.Expr:
    """Bollinger bands (talib.BBANDS, SMA middle, population std) as a struct {upper, middle, lower}."""
    _check_period("period", period)
    if not k > 0:
        raise ValueError(f"k must be > 0, got {k!r}")
    dtype = pl.Struct({field: pl.Float64 for field in BOLLINGER_FIELDS})
    kwargs = {"timeperiod": period, "nbdevup": float(k), "nbdevdn": float(k), "matype": 0}
    return (
        _col(close)
        .map_batches(_single(talib.BBANDS, BOLLINGER_FIELDS, kwargs), return_dtype=dtype)
        .alias(f"bollinger_{period}_{k:g}")
    )


def atr(high: IntoExpr, low: IntoExpr, close: IntoExpr, period: int = 14) -> pl.Expr:
    """Average true range (talib.ATR, Wilder smoothing); first valid row is `period`."""
    _check_period("period", period, minimum=1)
    inputs = ("high", "low", "close")
    packed = pl.struct(_col(high).alias("high"), _col(low).alias("low"), _col(close).alias("close"))
    return packed.map_batches(_multi(talib.ATR, inputs, {"timeperiod": period}), return_dtype=pl.Float64).alias(
        f"atr_{period}"
    )
