"""The compacted history archive: one parquet object per symbol, interval and year.

Hourly objects suit the live edge; a year of them (8,760 for 1m) costs far more
to list and open than to read. The archive holds the same rows in one object in
the coin_hts layout and columns (`timestamp`, `symbol`, `timeframe`, OHLCV …),
sorted, zstd, with row groups of about a week of 1m candles so a time-range
read touches only the groups it needs.

An archive records in its parquet metadata the last UTC day it covers
(`compacted_through`); readers take the hourly objects after that day as the
uncompacted tail, so the archive may lag the live edge without losing rows.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from coin_platform.market.klines import OHLCV_SCHEMA, UTC_MS, require_schema
from coin_platform.storage.layout import (
    history_key,
    ohlcv_keys_between,
    ohlcv_prefix,
    timeframe_label,
)
from coin_platform.storage.object_store import ObjectStore

HISTORY_SCHEMA: dict[str, pl.DataType] = {
    "timestamp": UTC_MS,
    "symbol": pl.String(),
    "timeframe": pl.String(),
    **{name: dtype for name, dtype in OHLCV_SCHEMA.items() if name != "open_time"},
}
COMPACTED_THROUGH = b"coin_platform.compacted_through"
# A week of 1m candles; 15m and 1h years fit in one or two groups.
ROW_GROUP_ROWS = 10_080


@dataclass(frozen=True)
class Compaction:
    key: str
    rows: int
    objects_read: int
    compacted_through: dt.date
    first_timestamp: dt.datetime | None
    last_timestamp: dt.datetime | None
    bytes_written: int


def to_history(ohlcv: pl.DataFrame, symbol: str, interval: str) -> pl.DataFrame:
    """Cleaned OHLCV rows -> archive rows (coin_hts column names), sorted by time."""
    return (
        ohlcv.rename({"open_time": "timestamp"})
        .with_columns(symbol=pl.lit(symbol), timeframe=pl.lit(timeframe_label(interval)))
        .select(list(HISTORY_SCHEMA))
        .sort("timestamp")
    )


def encode_history(frame: pl.DataFrame, compacted_through: dt.date) -> bytes:
    """Parquet bytes with week-sized row groups, statistics, and the coverage marker."""
    table = frame.to_arrow(compat_level=pl.CompatLevel.oldest())
    table = table.replace_schema_metadata({COMPACTED_THROUGH: compacted_through.isoformat()})
    sink = pa.BufferOutputStream()
    pq.write_table(
        table, sink, compression="zstd", row_group_size=ROW_GROUP_ROWS, write_statistics=True
    )
    return sink.getvalue().to_pybytes()


def year_bounds(year: int, through: dt.date) -> tuple[dt.date, dt.date]:
    """The days of `year` an archive built on `through` covers: Jan 1 .. min(Dec 31, through)."""
    first = dt.date(year, 1, 1)
    last = min(dt.date(year, 12, 31), through)
    if last < first:
        raise ValueError(f"{year} has no closed day by {through}; nothing to compact")
    return first, last


def read_hourly_range(
    store: ObjectStore, interval: str, symbol: str, first: dt.date, last: dt.date
) -> tuple[pl.DataFrame, int]:
    """The stored hourly OHLCV rows of days first..last, and how many objects held them.

    One listing of the symbol's prefix finds the objects (8,760 existence checks
    would cost more); each is validated against the OHLCV schema.
    """
    wanted = set(ohlcv_keys_between(interval, symbol, first, last))
    keys = [key for key in store.list_keys(ohlcv_prefix(interval, symbol)) if key in wanted]
    frames = [
        require_schema(frame, OHLCV_SCHEMA, key)
        for key, frame in zip(keys, store.read_parquet_many(keys), strict=True)
    ]
    hourly = pl.concat(frames) if frames else pl.DataFrame(schema=OHLCV_SCHEMA)
    return hourly, len(keys)


def compact_year(
    store: ObjectStore, interval: str, symbol: str, year: int, *, through: dt.date
) -> Compaction:
    """Rebuild the archive of one year from its hourly objects, up to `through`, in one PUT."""
    first, last = year_bounds(year, through)
    hourly, objects = read_hourly_range(store, interval, symbol, first, last)
    archive = to_history(hourly, symbol, interval)
    data = encode_history(archive, last)
    key = history_key(symbol, interval, year)
    store.write_bytes(key, data)
    return Compaction(
        key=key,
        rows=archive.height,
        objects_read=objects,
        compacted_through=last,
        first_timestamp=archive["timestamp"].min() if archive.height else None,  # type: ignore[arg-type]
        last_timestamp=archive["timestamp"].max() if archive.height else None,  # type: ignore[arg-type]
        bytes_written=len(data),
    )


def read_compacted_through(store: ObjectStore, key: str) -> dt.date | None:
    """The last day an archive covers, from its footer alone; None for foreign files."""
    metadata = pq.read_metadata(store.path(key), filesystem=store.filesystem).metadata or {}
    value = metadata.get(COMPACTED_THROUGH)
    return dt.date.fromisoformat(value.decode()) if value else None


@dataclass(frozen=True)
class ArchiveComparison:
    archived: int
    expected: int
    only_in_archive: int
    only_in_hourly: int
    compacted_through: dt.date | None

    @property
    def identical(self) -> bool:
        return (
            self.archived == self.expected and self.only_in_archive == 0 and self.only_in_hourly == 0
        )


def compare_with_hourly(
    store: ObjectStore, interval: str, symbol: str, year: int
) -> ArchiveComparison:
    """Row-for-row comparison of an archive with the hourly objects of the days it covers."""
    key = history_key(symbol, interval, year)
    through = read_compacted_through(store, key)
    archived = require_schema(store.read_parquet(key), HISTORY_SCHEMA, key)
    if through is None:
        raise ValueError(f"{key} has no {COMPACTED_THROUGH.decode()} marker")
    first, last = year_bounds(year, through)
    hourly, _ = read_hourly_range(store, interval, symbol, first, last)
    expected = to_history(hourly, symbol, interval)
    return ArchiveComparison(
        archived=archived.height,
        expected=expected.height,
        only_in_archive=archived.join(expected, on=list(HISTORY_SCHEMA), how="anti", nulls_equal=True).height,
        only_in_hourly=expected.join(archived, on=list(HISTORY_SCHEMA), how="anti", nulls_equal=True).height,
        compacted_through=through,
    )
