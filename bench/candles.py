"""Seeded random-walk candles, the benches' common input: the same seed gives the same candles in every bench.

Plain numpy and polars (no project import), so a bench that times importing coin_platform can make its
candles first.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import polars as pl

START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
MINUTE = dt.timedelta(minutes=1)


def random_walk_candles(
    rows: int, seed: int, *, symbols: Sequence[str] = (), start: dt.datetime = START, step: dt.timedelta = MINUTE
) -> pl.DataFrame:
    """OHLCV every `step` from `start` (UTC, ms): a geometric random walk whose highs and lows contain open and
    close. With `symbols`, `rows` candles for each in a `symbol` column, symbol i walking from seed + i."""
    if rows < 1:
        raise ValueError(f"rows must be at least 1, got {rows}")
    if not symbols:
        return _walk(rows, seed, start, step)
    return pl.concat(
        _walk(rows, seed + index, start, step).select(pl.lit(symbol).alias("symbol"), pl.all())
        for index, symbol in enumerate(symbols)
    )


def _walk(rows: int, seed: int, start: dt.datetime, step: dt.timedelta) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 1e-3, rows)))
    open_ = np.concatenate(([100.0], close[:-1]))
    wick = np.abs(rng.normal(0.0, 5e-4, (2, rows)))
    return pl.DataFrame(
        {
            "open_time": pl.datetime_range(start, start + step * (rows - 1), step, time_unit="ms", eager=True),
            "open": open_,
            "high": np.maximum(open_, close) * (1 + wick[0]),
            "low": np.minimum(open_, close) * (1 - wick[1]),
            "close": close,
            "volume": rng.gamma(2.0, 50.0, rows),
        }
    )
