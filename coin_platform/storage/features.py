"""The feature objects' one reader and writer: `features/{interval}/{symbol}/{yyyy-MM-dd_HH}.parquet`.

Object lists are built from the days (layout.py), never globbed; a missing hour is a
gap, not an error (`storage.ohlcv.read_hours`: one GET each, a stat first on a local disk).
The writer reads a day's objects before writing and puts only the hours that changed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import polars as pl

from coin_platform.features.schema import FEATURE_SCHEMA
from coin_platform.storage.layout import day_start, features_day_keys, features_key
from coin_platform.storage.object_store import ObjectStore
from coin_platform.storage.ohlcv import read_hours, read_stored_objects


def write_feature_days(
    store: ObjectStore, interval: str, symbol: str, days: Sequence[dt.date], features: pl.DataFrame
) -> tuple[int, int]:
    """Store `features` (FEATURE_COLUMNS rows of `days`) as hourly objects, replacing what `days` held.

    Only the hours whose rows differ from the stored object are written (a live tick changes
    the newest hour alone, and a GET costs less than a PUT); hours of `days` without rows lose
    any feature object stored before. Either way the store ends up holding exactly the objects
    a write of every hour would leave. Returns (objects written, objects deleted).
    """
    objects: dict[str, pl.DataFrame] = {}
    by_hour = features.with_columns(_day=pl.col("open_time").dt.date(), _hour=pl.col("open_time").dt.hour())
    for (day, hour), rows in by_hour.partition_by("_day", "_hour", as_dict=True).items():
        objects[features_key(interval, symbol, day_start(day) + dt.timedelta(hours=hour))] = rows.drop("_day", "_hour")
    stored = read_stored_objects(store, [k for day in days for k in features_day_keys(interval, symbol, day)])
    changed = {key: rows for key, rows in objects.items() if not _same_rows(stored.get(key), rows)}
    store.write_parquet_many(changed)
    stale = [key for key in stored if key not in objects]
    store.delete_many(stale)
    return len(changed), len(stale)


def _same_rows(stored: pl.DataFrame | None, rows: pl.DataFrame) -> bool:
    """Whether a stored object already holds exactly `rows` (same columns, types and values)."""
    return stored is not None and stored.schema == rows.schema and stored.equals(rows, null_equal=True)


def read_feature_days(store: ObjectStore, interval: str, symbol: str, days: Sequence[dt.date]) -> pl.DataFrame:
    """The stored feature objects of `days`, concatenated in time order (empty when none)."""
    keys = [k for day in sorted(days) for k in features_day_keys(interval, symbol, day)]
    frames = read_hours(store, keys, FEATURE_SCHEMA)
    return pl.concat(frames) if frames else pl.DataFrame(schema=FEATURE_SCHEMA)
