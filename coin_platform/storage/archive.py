"""The compacted history archive, its one reader and writer: one parquet object per symbol, interval and year.

Hourly objects suit the live edge; a year of them (8,760 for 1m) costs far more
to list and open than to read. The archive holds the same rows in one object in
the coin_hts layout and columns (`timestamp`, `symbol`, `timeframe`, OHLCV …),
sorted, zstd, with row groups of about a week of 1m candles so a time-range
read touches only the groups it needs.

An archive records in its parquet metadata the last UTC day it covers
(`compacted_through`); readers take the hourly objects after that day as the
uncompacted tail, so the archive may lag the live edge without losing rows.

A day inside that range can be written again after the compaction (a backfill
of a missing day, a repair). So the archive also records, per day, a
fingerprint of the rows it holds (`day_versions`), and the OHLCV day writer
records the fingerprint of the rows it wrote (`write_day_version`: one empty
object per day under `ohlcv_versions/`, named by the fingerprint). A reader
lists a year's versions once (one request, 365 names) and reads from the
hourly objects every day whose written version differs from the archive's;
the other days come from the archive. Content fingerprints rather than write
times: a rerun with the same rows keeps the archive in charge, there is no
clock or timestamp resolution to trust, and a compaction that races a write
records what it actually read, so the worst a race does is send readers to
the hourly objects. A day the writer never recorded (written before versions
existed) is taken as the archive holds it.

`read_archive_range` is how candles are read from an archive (or a plain coin_hts
file, whose naive timestamps are KST wall-clock times): by row group, only the
groups of the range decoded. `write_archive` stores one in a single PUT;
`read_archive` reads one whole, checked against HISTORY_SCHEMA.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from zoneinfo import ZoneInfo

import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from coin_platform.core.time import UTC_MS
from coin_platform.market.klines import OHLCV_SCHEMA, SchemaMismatchError, require_schema
from coin_platform.storage.layout import (
    history_key,
    ohlcv_version_key,
    ohlcv_version_of,
    ohlcv_versions_prefix,
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
DAY_VERSIONS = b"coin_platform.day_versions"
# The public archive files (name -> sha256) whose rows the archive holds: a rebuild reuses a file whose
# published checksum is still this one instead of downloading it again.
SOURCE_FILES = b"coin_platform.source_files"
# A week of 1m candles; 15m and 1h years fit in one or two groups.
ROW_GROUP_ROWS = 10_080
# coin_hts writes naive timestamps (its daily bars at naive KST midnight): they are KST wall-clock times.
COIN_HTS_ZONE = ZoneInfo("Asia/Seoul")
VALUE_COLUMNS = ("open", "high", "low", "close", "volume")
CANDLE_COLUMNS = ("timestamp", *VALUE_COLUMNS)


def to_history(ohlcv: pl.DataFrame, symbol: str, interval: str) -> pl.DataFrame:
    """Cleaned OHLCV rows -> archive rows (coin_hts column names), sorted by time."""
    return (
        ohlcv.rename({"open_time": "timestamp"})
        .with_columns(symbol=pl.lit(symbol), timeframe=pl.lit(timeframe_label(interval)))
        .select(list(HISTORY_SCHEMA))
        .sort("timestamp")
    )


def day_version(ohlcv: pl.DataFrame) -> str:
    """A fingerprint of one day's cleaned OHLCV rows, whatever their order or chunking.

    Row hashes may change with a polars upgrade; then versions differ and readers
    take those days from the hourly objects until the next compaction: slower, never stale.
    """
    rows = ohlcv.select(list(OHLCV_SCHEMA)).sort("open_time")
    return hashlib.sha256(rows.hash_rows(seed=0).to_numpy().tobytes()).hexdigest()[:16]


def day_versions(ohlcv: pl.DataFrame, first: dt.date, last: dt.date) -> dict[dt.date, str]:
    """`day_version` of every day first..last (an empty day too) of cleaned OHLCV rows."""
    by_day = ohlcv.with_columns(_day=pl.col("open_time").dt.date()).partition_by("_day", as_dict=True)
    empty = ohlcv.clear()
    return {
        day: day_version(by_day[(day,)].drop("_day") if (day,) in by_day else empty)
        for day in (first + dt.timedelta(days=n) for n in range((last - first).days + 1))
    }


def write_day_version(store: ObjectStore, interval: str, symbol: str, day: dt.date, ohlcv: pl.DataFrame) -> None:
    """Record the rows the OHLCV writer has just written for `day` (after its hourly objects).

    Writes the new record before removing the old one: a reader in between sees two
    versions and reads the day's hourly objects, which are already the new ones.
    """
    version = day_version(ohlcv)
    recorded = read_day_versions(store, interval, symbol, day.year).get(day, set())
    if recorded == {version}:
        return
    store.write_bytes(ohlcv_version_key(interval, symbol, day, version), b"")
    store.delete_many([ohlcv_version_key(interval, symbol, day, old) for old in recorded - {version}])


def read_day_versions(store: ObjectStore, interval: str, symbol: str, year: int) -> dict[dt.date, set[str]]:
    """The versions recorded for the written days of one year, from one listing."""
    versions: dict[dt.date, set[str]] = {}
    for key in store.list_keys(ohlcv_versions_prefix(interval, symbol, year)):
        if (named := ohlcv_version_of(key)) is not None:
            versions.setdefault(named[0], set()).add(named[1])
    return versions


def days_not_held(
    store: ObjectStore, interval: str, symbol: str, year: int, held: dict[dt.date, str],
    first: dt.date, last: dt.date,
) -> list[dt.date]:
    """Days first..last written with other rows than the archive's `held` versions: read them hourly."""
    written = read_day_versions(store, interval, symbol, year)
    return sorted(day for day, versions in written.items() if first <= day <= last and versions != {held.get(day)})


def archive_coverage(metadata: dict[bytes, bytes] | None) -> tuple[dt.date | None, dict[dt.date, str]]:
    """An archive's `compacted_through` day and per-day versions, from its footer metadata;
    (None, {}) for a file the platform did not compact (a coin_hts file)."""
    metadata = metadata or {}
    through = metadata.get(COMPACTED_THROUGH)
    held = json.loads(metadata.get(DAY_VERSIONS, b"{}"))
    return (
        dt.date.fromisoformat(through.decode()) if through else None,
        {dt.date.fromisoformat(day): version for day, version in held.items()},
    )


def encode_history(
    frame: pl.DataFrame, compacted_through: dt.date, versions: dict[dt.date, str],
    source_files: dict[str, str] | None = None,
) -> bytes:
    """Parquet bytes with week-sized row groups, statistics, the coverage marker, day versions and source files."""
    table = frame.to_arrow(compat_level=pl.CompatLevel.oldest())
    table = table.replace_schema_metadata({
        COMPACTED_THROUGH: compacted_through.isoformat(),
        DAY_VERSIONS: json.dumps({day.isoformat(): version for day, version in sorted(versions.items())}),
        SOURCE_FILES: json.dumps(dict(sorted((source_files or {}).items()))),
    })
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


def _footer(store: ObjectStore, key: str) -> dict[bytes, bytes]:
    return pq.read_metadata(store.path(key), filesystem=store.filesystem).metadata or {}


def read_compacted_through(store: ObjectStore, key: str) -> dt.date | None:
    """The last day an archive covers, from its footer alone; None for foreign files."""
    return archive_coverage(_footer(store, key))[0]


def read_source_files(store: ObjectStore, interval: str, symbol: str, year: int) -> dict[str, str]:
    """The public archive files (name -> sha256) an archive was built from, from its footer; {} when none
    or when the archive does not exist."""
    key = history_key(symbol, interval, year)
    if not store.exists(key):
        return {}
    return json.loads(_footer(store, key).get(SOURCE_FILES, b"{}"))


def write_archive(
    store: ObjectStore, interval: str, symbol: str, year: int, archive: pl.DataFrame,
    compacted_through: dt.date, versions: dict[dt.date, str], source_files: dict[str, str] | None = None,
) -> tuple[str, int]:
    """Store one year's archive rows (HISTORY_SCHEMA, sorted) in one PUT; returns (key, bytes written)."""
    key = history_key(symbol, interval, year)
    data = encode_history(archive, compacted_through, versions, source_files)
    store.write_bytes(key, data)
    return key, len(data)


def read_archive(store: ObjectStore, interval: str, symbol: str, year: int) -> tuple[pl.DataFrame, dt.date | None]:
    """One archive whole, checked against HISTORY_SCHEMA, and its `compacted_through` day."""
    key = history_key(symbol, interval, year)
    return require_schema(store.read_parquet(key), HISTORY_SCHEMA, key), read_compacted_through(store, key)


def read_archive_range(
    store: ObjectStore, key: str, start: dt.datetime, end: dt.datetime
) -> tuple[pl.DataFrame, dt.date | None, dict[dt.date, str]]:
    """The rows of the archive (or coin_hts file) `key` opening in [start, end), read by row group:
    `timestamp` (UTC ms) and OHLCV as Float64; with its compacted_through day and day versions."""
    path = store.path(key)
    schema = pq.read_schema(path, filesystem=store.filesystem)
    timestamp = _check_archive_schema(schema, f"{store.uri}/{key}")
    # pyarrow compares a timestamp column only with a value of the same zone-awareness;
    # naive file timestamps are KST wall-clock times, as coin_hts writes them.
    bounds = [
        pa.scalar(
            moment if timestamp.tz else moment.astimezone(COIN_HTS_ZONE).replace(tzinfo=None), type=timestamp
        )
        for moment in (start, end)
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
