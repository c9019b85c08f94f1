"""The compacted history archive: one parquet object per symbol, interval and year.

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
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from coin_platform.market.klines import OHLCV_SCHEMA, UTC_MS, require_schema
from coin_platform.storage.layout import (
    history_key,
    ohlcv_keys_between,
    ohlcv_prefix,
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


def encode_history(frame: pl.DataFrame, compacted_through: dt.date, versions: dict[dt.date, str]) -> bytes:
    """Parquet bytes with week-sized row groups, statistics, the coverage marker and day versions."""
    table = frame.to_arrow(compat_level=pl.CompatLevel.oldest())
    table = table.replace_schema_metadata({
        COMPACTED_THROUGH: compacted_through.isoformat(),
        DAY_VERSIONS: json.dumps({day.isoformat(): version for day, version in sorted(versions.items())}),
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
    data = encode_history(archive, last, day_versions(hourly, first, last))
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
    return archive_coverage(pq.read_metadata(store.path(key), filesystem=store.filesystem).metadata)[0]


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
