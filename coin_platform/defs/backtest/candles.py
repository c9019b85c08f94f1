"""Candles for backtests, read through the public loader (the yearly archive plus the hourly tail)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import polars as pl

from coin_platform.core.time import UTC_MS
from coin_platform.loader import load_ohlcv
from coin_platform.storage.object_store import ObjectStore


def load_candles(
    store: ObjectStore, symbols: Sequence[str], interval: str, start: dt.datetime, end: dt.datetime
) -> pl.DataFrame:
    """symbol, open_time, OHLCV of the candles opening in [start, end], time-sorted per symbol.

    Raises the loader's NoDataError (naming symbols, range and store) when none are stored.
    """
    frame = load_ohlcv(list(symbols), start, end, interval, store)
    return frame.select(
        "symbol",
        pl.col("timestamp").cast(UTC_MS).alias("open_time"),
        *[pl.col(c).cast(pl.Float64) for c in ("open", "high", "low", "close", "volume")],
    ).sort("symbol", "open_time")
