"""The cleaned OHLCV dataset's one writer (`write_ohlcv_day`) and readers, hourly objects
`ohlcv/{interval}/{symbol}/{yyyy-MM-dd_HH}.parquet`.

`read_ohlcv_days` reads the hourly objects of a day range as stored, all OHLCV columns
(the checks, the hot store, compaction). `read_candles` is the range reader every
consumer of candles uses (the user-facing loader, the features look-back, backtests):
the yearly archives (or a plain coin_hts tree) by year, read with a timestamp filter so
only the row groups of the range are decoded (storage.archive), then the hourly objects
of the days an archive does not hold. An archive's `compacted_through` marker says which
UTC day it covers up to; the hourly objects of the later days are the uncompacted tail.
A day inside that range written again since the compaction (a backfill, a repair) is
read from its hourly objects: the archive records a fingerprint of each day's rows, the
OHLCV writer one per day it writes, and one listing of the year's writer records tells
which days differ (storage/archive.py). A year without an archive is read from hourly
objects alone; an archive without the marker (a coin_hts file) is taken to cover its
whole year.

Hourly objects are found from keys built from the date range (layout.py), never by
globbing; past a year of hours the stored ones are listed instead, which costs one
request per 1,000 stored objects rather than one per hour asked. On S3 each object is
simply read and a missing one skipped: one request per hour, in parallel, where
pyarrow's existence checks are sequential HEADs (5x slower when hours are missing,
1.5x when present). On a local disk the missing ones are skipped by a stat first,
which costs far less than a failed open.

Timestamps are returned as UTC milliseconds; naive timestamps inside a stored file are
coin_hts's KST wall-clock times. A stored object without the required columns or types
raises SchemaMismatchError naming it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import polars as pl
import pyarrow.fs as pafs

from coin_platform.core.intervals import SUPPORTED_INTERVALS
from coin_platform.core.symbols import is_binance_symbol
from coin_platform.core.time import UTC_MS
from coin_platform.market.klines import OHLCV_SCHEMA, require_schema
from coin_platform.storage.archive import VALUE_COLUMNS, days_not_held, read_archive_range, write_day_version
from coin_platform.storage.layout import (
    HOURS_PER_DAY,
    coin_hts_key,
    day_start,
    history_key,
    ohlcv_day_keys,
    ohlcv_key_hour,
    ohlcv_keys_between,
    ohlcv_prefix,
)
from coin_platform.storage.object_store import IO_THREADS, ObjectStore

CANDLE_SCHEMA: dict[str, pl.DataType] = {"timestamp": UTC_MS, **{c: pl.Float64() for c in VALUE_COLUMNS}}
# The part of an hourly object `read_candles` returns, with the types the pipeline writes.
HOURLY_SCHEMA = {name: OHLCV_SCHEMA[name] for name in ("open_time", *VALUE_COLUMNS)}
HOUR_MS = 3_600_000
# More hourly objects than a year's hours are found by one listing of the symbol's objects
# instead of one request each: a LIST page answers for 1,000 objects.
LIST_ABOVE_HOURS = 366 * HOURS_PER_DAY
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MS = dt.timedelta(milliseconds=1)


def _ms(moment: dt.datetime) -> int:
    return (moment - _EPOCH) // _MS


def _utc(ms: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(milliseconds=ms)


def no_candles() -> pl.DataFrame:
    return pl.DataFrame(schema=CANDLE_SCHEMA)


def read_candles(store: ObjectStore, symbol: str, interval: str, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
    """Stored `interval` candles of `symbol` opening in [start, end), sorted: `timestamp` (UTC ms)
    and open, high, low, close, volume as Float64. Empty when none; no resampling."""
    first_ms, end_ms = _ms(start), _ms(end)
    first_day, last_day = start.astimezone(dt.UTC).date(), _utc(end_ms - 1).date()
    years = range(first_day.year, last_day.year + 1)
    layouts = {year: [history_key(symbol, interval, year), coin_hts_key(symbol, interval, year)] for year in years}
    candidates = [key for keys in layouts.values() for key in keys]
    present = dict(zip(candidates, store.exists_many(candidates), strict=True))
    # Only the platform writes hourly objects, and only for Binance symbols.
    hourly = interval in SUPPORTED_INTERVALS and is_binance_symbol(symbol)
    frames: list[pl.DataFrame] = []
    tail: list[dt.date] = []
    for year in years:
        tail_first = max(first_day, dt.date(year, 1, 1))
        tail_last = min(last_day, dt.date(year, 12, 31))
        key = next((k for k in layouts[year] if present[k]), None)
        if key is not None:
            archive, through, held = read_archive_range(store, key, _utc(first_ms), _utc(end_ms))
            if through is None:
                frames.append(archive)
                continue
            if hourly and tail_first <= (held_last := min(tail_last, through)):
                # Days written again since the compaction come from their hourly objects.
                if rewritten := days_not_held(store, interval, symbol, year, held, tail_first, held_last):
                    archive = archive.filter(~pl.col("timestamp").dt.date().is_in(rewritten))
                    tail += rewritten
            frames.append(archive)
            tail_first = max(tail_first, through + dt.timedelta(days=1))
        if hourly and tail_first <= tail_last:
            tail += _days(tail_first, tail_last)
    keys = _hour_keys(store, interval, symbol, tail, first_ms, end_ms)
    hours = read_hours(store, keys, HOURLY_SCHEMA, qualified=True)
    frames += [frame.rename({"open_time": "timestamp"}) for frame in hours]
    if not frames:
        return no_candles()
    window = (pl.col("timestamp") >= _utc(first_ms)) & (pl.col("timestamp") < _utc(end_ms))
    return pl.concat(frames).filter(window).sort("timestamp", maintain_order=True)


def _days(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]


def _hour_keys(
    store: ObjectStore, interval: str, symbol: str, days: Sequence[dt.date], first_ms: int, end_ms: int
) -> list[str]:
    """The hourly objects of `days` whose hour overlaps [first_ms, end_ms).

    Built from the dates; past a year of hours, the stored ones are listed instead,
    which costs one request per 1,000 stored objects rather than one per hour asked.
    """

    def overlaps(hour_ms: int) -> bool:
        return hour_ms + HOUR_MS > first_ms and hour_ms < end_ms

    if len(days) * HOURS_PER_DAY <= LIST_ABOVE_HOURS:
        return [
            key
            for day in days
            for hour, key in enumerate(ohlcv_day_keys(interval, symbol, day))
            if overlaps(_ms(day_start(day)) + hour * HOUR_MS)
        ]
    wanted = set(days)
    listed = ((key, ohlcv_key_hour(key)) for key in store.list_keys(ohlcv_prefix(interval, symbol)))
    return [key for key, hour in listed if hour is not None and hour.date() in wanted and overlaps(_ms(hour))]


def read_hours(
    store: ObjectStore, keys: Sequence[str], schema: dict[str, pl.DataType] = OHLCV_SCHEMA, *, qualified: bool = False
) -> list[pl.DataFrame]:
    """The stored ones among the hourly objects `keys`, in key order, each checked against
    (and selected to) `schema`; an object missing is a gap, not an error.

    A wrong schema raises SchemaMismatchError naming the key (with the store's URI if `qualified`).
    """
    stored = read_stored_objects(store, keys)
    return [require_schema(frame, schema, f"{store.uri}/{key}" if qualified else key) for key, frame in stored.items()]


def read_stored_objects(store: ObjectStore, keys: Sequence[str]) -> dict[str, pl.DataFrame]:
    """The stored ones among the parquet objects `keys`, by key in key order, as stored (no schema check).

    On S3 each object is simply read and a missing one skipped (one request each, in parallel);
    on a local disk the missing ones are skipped by a stat first.
    """

    def read(key: str) -> pl.DataFrame | None:
        try:
            return store.read_parquet(key)
        except FileNotFoundError:
            return None

    if isinstance(store.filesystem, pafs.LocalFileSystem):
        keys = [key for key, found in zip(keys, store.exists_many(keys), strict=True) if found]
    with ThreadPoolExecutor(IO_THREADS) as pool:
        return {key: frame for key, frame in zip(keys, pool.map(read, keys), strict=True) if frame is not None}


def read_ohlcv_days(
    store: ObjectStore, interval: str, symbol: str, first: dt.date, last: dt.date
) -> tuple[pl.DataFrame, int]:
    """The stored hourly OHLCV rows of days first..last, and how many objects held them.

    Raises SchemaMismatchError naming the first object whose columns differ.
    """
    frames = read_hours(store, ohlcv_keys_between(interval, symbol, first, last))
    return (pl.concat(frames) if frames else pl.DataFrame(schema=OHLCV_SCHEMA)), len(frames)


def read_ohlcv_day(store: ObjectStore, interval: str, symbol: str, day: dt.date) -> pl.DataFrame:
    """The stored hourly OHLCV objects of one day, concatenated (empty when none).

    Raises SchemaMismatchError naming the first object whose columns differ.
    """
    return read_ohlcv_days(store, interval, symbol, day, day)[0]


def write_ohlcv_day(
    store: ObjectStore,
    interval: str,
    symbol: str,
    day: dt.date,
    frame: pl.DataFrame,
    *,
    hours_closed: int,
    only_missing: bool,
) -> tuple[int, int]:
    """Store one day's cleaned rows as hourly objects and record the day's version (storage.archive).

    Closed hours (the first `hours_closed`) left without rows lose any stale object, so a
    rerun leaves exactly the objects a first run would. With `only_missing`, hours before
    the newest stored hour are left alone (the live edge only touches its tail).
    Returns (objects written, objects deleted).
    """
    keys = ohlcv_day_keys(interval, symbol, day)
    first_hour = 0
    if only_missing:
        stored = [hour for hour, found in enumerate(store.exists_many(keys)) if found]
        first_hour = max(stored, default=0)
    by_hour = frame.with_columns(hour=pl.col("open_time").dt.hour())
    hourly = {
        keys[hour]: rows.drop("hour")
        for (hour,), rows in by_hour.partition_by("hour", as_dict=True).items()
        if hour >= first_hour
    }
    store.write_parquet_many(hourly)
    deleted = 0
    stale = [keys[h] for h in range(first_hour, hours_closed) if keys[h] not in hourly]
    if stale:
        present = [k for k, found in zip(stale, store.exists_many(stale), strict=True) if found]
        store.delete_many(present)
        deleted = len(present)
    write_day_version(store, interval, symbol, day, frame)
    return len(hourly), deleted
