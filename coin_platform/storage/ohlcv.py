"""The cleaned OHLCV dataset: the one reader (and, with `write_ohlcv_day`, the one writer).

`read_candles` is the range reader every consumer of candles uses (the user-facing
loader, the features look-back, backtests): the yearly archives (or a plain coin_hts
tree) by year, read with a timestamp filter so only the row groups of the range are
decoded, then the hourly objects of the days an archive does not hold. An archive's
`compacted_through` marker says which UTC day it covers up to; the hourly objects of
the later days are the uncompacted tail. A day inside that range written again since
the compaction (a backfill, a repair) is read from its hourly objects: the archive
records a fingerprint of each day's rows, the OHLCV writer one per day it writes, and
one listing of the year's writer records tells which days differ (storage/history.py).
A year without an archive is read from hourly objects alone; an archive without the
marker (a coin_hts file) is taken to cover its whole year.

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
from zoneinfo import ZoneInfo

import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from coin_platform.core.intervals import SUPPORTED_INTERVALS
from coin_platform.core.symbols import is_binance_symbol
from coin_platform.core.time import UTC_MS
from coin_platform.market.klines import OHLCV_SCHEMA, SchemaMismatchError, require_schema
from coin_platform.storage.history import archive_coverage, days_not_held
from coin_platform.storage.layout import (
    HOURS_PER_DAY,
    coin_hts_key,
    day_start,
    history_key,
    ohlcv_day_keys,
    ohlcv_key_hour,
    ohlcv_prefix,
)
from coin_platform.storage.object_store import IO_THREADS, ObjectStore

# coin_hts writes naive timestamps (its daily bars at naive KST midnight): they are KST wall-clock times.
COIN_HTS_ZONE = ZoneInfo("Asia/Seoul")
VALUE_COLUMNS = ("open", "high", "low", "close", "volume")
CANDLE_COLUMNS = ("timestamp", *VALUE_COLUMNS)
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


def read_candles(
    store: ObjectStore, symbol: str, interval: str, start: dt.datetime, end: dt.datetime
) -> pl.DataFrame:
    """Stored `interval` candles of `symbol` opening in [start, end), sorted: `timestamp` (UTC ms)
    and open, high, low, close, volume as Float64. Empty when none; no resampling."""
    first_ms, end_ms = _ms(start), _ms(end)
    first_day, last_day = start.astimezone(dt.UTC).date(), _utc(end_ms - 1).date()
    years = range(first_day.year, last_day.year + 1)
    layouts = {year: [history_key(symbol, interval, year), coin_hts_key(symbol, interval, year)]
               for year in years}
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
            archive, through, held = _read_archive(store, key, first_ms, end_ms)
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
    frames += [frame.rename({"open_time": "timestamp"}) for frame in read_hours(store, keys, HOURLY_SCHEMA)]
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
    return [
        key for key, hour in listed
        if hour is not None and hour.date() in wanted and overlaps(_ms(hour))
    ]


def _read_archive(
    store: ObjectStore, key: str, first_ms: int, end_ms: int
) -> tuple[pl.DataFrame, dt.date | None, dict[dt.date, str]]:
    """The archive's rows in [first, end), read by row group, its compacted_through day and day versions."""
    path = store.path(key)
    schema = pq.read_schema(path, filesystem=store.filesystem)
    timestamp = _check_archive_schema(schema, f"{store.uri}/{key}")
    # pyarrow compares a timestamp column only with a value of the same zone-awareness;
    # naive file timestamps are KST wall-clock times, as coin_hts writes them.
    bounds = [
        pa.scalar(
            moment if timestamp.tz else moment.astimezone(COIN_HTS_ZONE).replace(tzinfo=None), type=timestamp
        )
        for moment in (_utc(first_ms), _utc(end_ms))
    ]
    table = pq.read_table(
        path,
        filesystem=store.filesystem,
        columns=list(CANDLE_COLUMNS),
        filters=(ds.field("timestamp") >= bounds[0]) & (ds.field("timestamp") < bounds[1]),
    )
    frame: pl.DataFrame = pl.from_arrow(table)  # type: ignore[assignment]
    through, held = archive_coverage(schema.metadata)
    return frame.select(_as_utc_ms(frame.schema["timestamp"]), *_as_float(VALUE_COLUMNS)), through, held


def _check_archive_schema(schema: pa.Schema, name: str) -> pa.TimestampType:
    """The type of the archive's timestamp column, or SchemaMismatchError naming file and columns."""
    missing = [column for column in CANDLE_COLUMNS if column not in schema.names]
    if missing:
        raise SchemaMismatchError(f"{name} lacks columns {missing}")
    timestamp = schema.field("timestamp").type
    wrong = [] if pa.types.is_timestamp(timestamp) else ["timestamp"]
    wrong += [
        column for column in VALUE_COLUMNS
        if not (pa.types.is_floating(t := schema.field(column).type) or pa.types.is_integer(t))
    ]
    if wrong:
        raise SchemaMismatchError(
            f"{name} has unexpected types for {wrong}: "
            f"{', '.join(f'{c} {schema.field(c).type}' for c in wrong)}"
        )
    return timestamp


def _as_utc_ms(dtype: pl.DataType) -> pl.Expr:
    """Any datetime column as ms UTC; a naive one holds KST wall-clock times (coin_hts)."""
    column = pl.col("timestamp")
    if getattr(dtype, "time_zone", None) is None:
        column = column.dt.replace_time_zone(str(COIN_HTS_ZONE))
    return column.dt.convert_time_zone("UTC").dt.cast_time_unit("ms")


def _as_float(columns: Sequence[str]) -> list[pl.Expr]:
    return [pl.col(column).cast(pl.Float64) for column in columns]


def read_hours(
    store: ObjectStore, keys: Sequence[str], schema: dict[str, pl.DataType] = OHLCV_SCHEMA
) -> list[pl.DataFrame]:
    """The stored ones among the hourly objects `keys`, in key order, each checked against
    (and selected to) `schema`; an object missing is a gap, not an error."""

    def read(key: str) -> pl.DataFrame | None:
        try:
            frame = store.read_parquet(key)
        except FileNotFoundError:
            return None
        return require_schema(frame, schema, f"{store.uri}/{key}")

    if isinstance(store.filesystem, pafs.LocalFileSystem):
        keys = [key for key, found in zip(keys, store.exists_many(keys), strict=True) if found]
    with ThreadPoolExecutor(IO_THREADS) as pool:
        return [frame for frame in pool.map(read, keys) if frame is not None]
