"""Hand-made candle frames for backtest tests: a few bars whose every price is chosen."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl

from coin_platform.core.signals import SIGNALS
from coin_platform.core.time import UTC_MS

START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
MINUTE = dt.timedelta(minutes=1)


def bars(
    opens: Sequence[float],
    *,
    high: Sequence[float] | None = None,
    low: Sequence[float] | None = None,
    close: Sequence[float] | None = None,
    signals: Mapping[str, Sequence[int]] | None = None,
    symbol: str | None = None,
    start: dt.datetime = START,
) -> pl.DataFrame:
    """1m candles from `opens` (high/low/close default to the open: a flat bar) and the four
    signal columns, each True on the bar indices `signals[name]` lists."""
    n = len(opens)
    signals = signals or {}
    unknown = set(signals) - set(SIGNALS)
    assert not unknown, unknown
    columns: dict[str, object] = {
        "open_time": pl.Series([start + i * MINUTE for i in range(n)], dtype=UTC_MS),
        "open": np.asarray(opens, dtype=float),
        "high": np.asarray(high if high is not None else opens, dtype=float),
        "low": np.asarray(low if low is not None else opens, dtype=float),
        "close": np.asarray(close if close is not None else opens, dtype=float),
        "volume": np.ones(n),
    }
    for name in SIGNALS:
        fired = np.zeros(n, dtype=bool)
        fired[list(signals.get(name, []))] = True
        columns[name] = fired
    frame = pl.DataFrame(columns)
    return frame.with_columns(symbol=pl.lit(symbol)).select("symbol", *columns) if symbol else frame


def random_walk_candles(rows: int, seed: int, *, symbol: str | None = None, start: dt.datetime = START) -> pl.DataFrame:
    """Seeded 1m OHLCV: a geometric random walk whose highs and lows contain open and close."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 1e-3, rows)))
    open_ = np.concatenate(([100.0], close[:-1]))
    wick = np.abs(rng.normal(0.0, 5e-4, (2, rows)))
    frame = pl.DataFrame(
        {
            "open_time": pl.datetime_range(start, start + (rows - 1) * MINUTE, "1m", time_unit="ms", eager=True),
            "open": open_,
            "high": np.maximum(open_, close) * (1 + wick[0]),
            "low": np.minimum(open_, close) * (1 - wick[1]),
            "close": close,
            "volume": rng.gamma(2.0, 50.0, rows),
        }
    )
    return frame.with_columns(symbol=pl.lit(symbol)).select("symbol", *frame.columns) if symbol else frame
