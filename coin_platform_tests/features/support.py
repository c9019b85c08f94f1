"""Synthetic candles for the feature tests."""

import datetime as dt

import numpy as np
import polars as pl

from coin_platform.market.klines import OHLCV_SCHEMA
from coin_platform.storage.layout import day_start
from coin_platform.storage.object_store import ObjectStore

START = dt.date(2024, 3, 1)


def candles(day: dt.date, seed: int, minutes: int = 1440) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 + np.cumsum(rng.normal(0, 0.5, minutes))
    start = day_start(day)
    return pl.DataFrame(
        {
            "open_time": [start + dt.timedelta(minutes=i) for i in range(minutes)],
            "open": close + rng.normal(0, 0.1, minutes),
            "high": close + rng.uniform(0.1, 1, minutes),
            "low": close - rng.uniform(0.1, 1, minutes),
            "close": close,
            "volume": rng.uniform(1, 50, minutes),
            "quote_volume": rng.uniform(100, 5000, minutes),
            "trades": rng.integers(1, 100, minutes),
            "taker_buy_volume": rng.uniform(0, 1, minutes),
            "taker_buy_quote_volume": rng.uniform(0, 100, minutes),
        }
    ).cast(OHLCV_SCHEMA)  # type: ignore[arg-type]


def counting_reads(store: ObjectStore, monkeypatch) -> list[str]:
    """The keys `store` reads from now on, in order (the real store still reads them)."""
    read = store.read_parquet
    keys: list[str] = []

    def counted(key: str) -> pl.DataFrame:
        keys.append(key)
        return read(key)

    monkeypatch.setattr(store, "read_parquet", counted)
    return keys
