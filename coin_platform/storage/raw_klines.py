"""Raw klines, the dataset's one reader and writer: one object per UTC day,
`raw/klines/{interval}/{symbol}/{yyyy-MM-dd}.parquet` (layout.py)."""

from __future__ import annotations

import datetime as dt

import polars as pl

from coin_platform.market.klines import RAW_KLINE_SCHEMA, require_schema
from coin_platform.storage.layout import raw_klines_key
from coin_platform.storage.object_store import ObjectStore


def read_raw_day(store: ObjectStore, interval: str, symbol: str, day: dt.date) -> pl.DataFrame | None:
    """The stored raw klines of one day, or None when the day is not stored (one GET).

    Raises SchemaMismatchError naming the object when its columns differ.
    """
    key = raw_klines_key(interval, symbol, day)
    try:
        frame = store.read_parquet(key)
    except FileNotFoundError:
        return None
    return require_schema(frame, RAW_KLINE_SCHEMA, key)


def write_raw_day(store: ObjectStore, interval: str, symbol: str, day: dt.date, frame: pl.DataFrame) -> str:
    """Store one day's raw klines in one object (replacing it); returns its key."""
    key = raw_klines_key(interval, symbol, day)
    store.write_parquet(key, frame)
    return key
