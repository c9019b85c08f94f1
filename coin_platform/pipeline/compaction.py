"""The compaction step: a year of hourly OHLCV objects -> one archive object (storage.archive).

Also the archive's verification: row-for-row against the hourly objects of the days it covers.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from coin_platform.storage.archive import (
    COMPACTED_THROUGH,
    HISTORY_SCHEMA,
    day_versions,
    read_archive,
    to_history,
    write_archive,
    year_bounds,
)
from coin_platform.storage.layout import history_key
from coin_platform.storage.object_store import ObjectStore
from coin_platform.storage.ohlcv import read_ohlcv_days


@dataclass(frozen=True)
class Compaction:
    key: str
    rows: int
    objects_read: int
    compacted_through: dt.date
    first_timestamp: dt.datetime | None
    last_timestamp: dt.datetime | None
    bytes_written: int


def compact_year(
    store: ObjectStore, interval: str, symbol: str, year: int, *, through: dt.date
) -> Compaction:
    """Rebuild the archive of one year from its hourly objects, up to `through`, in one PUT."""
    first, last = year_bounds(year, through)
    hourly, objects = read_ohlcv_days(store, interval, symbol, first, last)
    archive = to_history(hourly, symbol, interval)
    key, written = write_archive(store, interval, symbol, year, archive, last, day_versions(hourly, first, last))
    return Compaction(
        key=key,
        rows=archive.height,
        objects_read=objects,
        compacted_through=last,
        first_timestamp=archive["timestamp"].min() if archive.height else None,  # type: ignore[arg-type]
        last_timestamp=archive["timestamp"].max() if archive.height else None,  # type: ignore[arg-type]
        bytes_written=written,
    )


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
    archived, through = read_archive(store, interval, symbol, year)
    if through is None:
        raise ValueError(f"{history_key(symbol, interval, year)} has no {COMPACTED_THROUGH.decode()} marker")
    first, last = year_bounds(year, through)
    hourly, _ = read_ohlcv_days(store, interval, symbol, first, last)
    expected = to_history(hourly, symbol, interval)
    return ArchiveComparison(
        archived=archived.height,
        expected=expected.height,
        only_in_archive=archived.join(expected, on=list(HISTORY_SCHEMA), how="anti", nulls_equal=True).height,
        only_in_hourly=expected.join(archived, on=list(HISTORY_SCHEMA), how="anti", nulls_equal=True).height,
        compacted_through=through,
    )
