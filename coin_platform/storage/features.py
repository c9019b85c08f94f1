"""The feature objects' one reader and writer: `features/{interval}/{symbol}/{yyyy-MM-dd_HH}.parquet`.

Object lists are built from the days (layout.py), never globbed; a missing hour is a
gap, not an error (`storage.ohlcv.read_hours`: one GET each, a stat first on a local disk).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import polars as pl

from coin_platform.features.schema import FEATURE_SCHEMA
from coin_platform.storage.layout import day_start, features_day_keys, features_key
from coin_platform.storage.object_store import ObjectStore
from coin_platform.storage.ohlcv import read_hours


def write_feature_days(
    store: ObjectStore, interval: str, symbol: str, days: Sequence[dt.date], features: pl.DataFrame
) -> tuple[int, int]:
    """Store `features` (FEATURE_COLUMNS rows of `days`) as hourly objects, replacing what `days` held.

    Hours of `days` without rows lose any feature object stored before. Returns
    (objects written, objects deleted).
    """
    objects: dict[str, pl.DataFrame] = {}
    by_hour = features.with_columns(_day=pl.col("open_time").dt.date(), _hour=pl.col("open_time").dt.hour())
    for (day, hour), rows in by_hour.partition_by("_day", "_hour", as_dict=True).items():
        objects[features_key(interval, symbol, day_start(day) + dt.timedelta(hours=hour))] = rows.drop("_day", "_hour")
    store.write_parquet_many(objects)
    stale = [k for day in days for k in features_day_keys(interval, symbol, day) if k not in objects]
    present = [k for k, found in zip(stale, store.exists_many(stale), strict=True) if found] if stale else []
    store.delete_many(present)
    return len(objects), len(present)


def read_feature_days(store: ObjectStore, interval: str, symbol: str, days: Sequence[dt.date]) -> pl.DataFrame:
    """The stored feature objects of `days`, concatenated in time order (empty when none)."""
    keys = [k for day in sorted(days) for k in features_day_keys(interval, symbol, day)]
    frames = read_hours(store, keys, FEATURE_SCHEMA)
    return pl.concat(frames) if frames else pl.DataFrame(schema=FEATURE_SCHEMA)
