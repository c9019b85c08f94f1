"""The compaction step: a year of candles -> one archive object (storage.archive).

A year's days come from Binance's public archive where it has published them (monthly
files for closed months, daily ones otherwise, checksum-verified, cleaned by the REST
path's `clean_klines`) and from the hourly OHLCV objects for the rest: the live edge and
whatever the archive lacks. Without a public archive client every day comes from the hourly
objects. A rebuild keeps the rows of every source file whose published checksum is unchanged
instead of downloading it again, so rebuilding a year each day costs one small request per file.

Also the archive's verification: row-for-row against the hourly objects of the days it took from them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

import polars as pl

from coin_platform.market.klines import OHLCV_SCHEMA, clean_klines, find_gaps
from coin_platform.market.public_archive import (
    ArchiveFile,
    PublicArchiveClient,
    parse_archive_file_name,
    plan_archive_files,
    read_download,
)
from coin_platform.pipeline.ingest import contiguous_runs
from coin_platform.storage.archive import (
    COMPACTED_THROUGH,
    HISTORY_SCHEMA,
    day_versions,
    read_archive,
    read_compacted_through,
    read_source_files,
    to_history,
    write_archive,
    year_bounds,
)
from coin_platform.storage.layout import day_start, history_key
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
    bytes_written: int  # 0: the stored archive already held these rows, and was left as it was
    files_downloaded: int = 0
    files_reused: int = 0
    bytes_downloaded: int = 0
    days_from_hourly: int = 0
    missing_candles: int = 0
    quarantined: int = 0
    unpublished: tuple[str, ...] = field(default_factory=tuple)


# Told of each public archive file as it is taken: (file, "downloaded" | "reused" | "unpublished").
FileProgress = Callable[[ArchiveFile, str], None]
# Binance publishes a month's file in the first days after it closes; until then its daily files stand in.
# A month closed longer ago without a file has no candles there (before the listing): no daily requests.
MONTHLY_FILE_DELAY = dt.timedelta(days=7)


@dataclass
class _PublicRows:
    """What the public archive gave for a year: raw rows to clean, rows kept from the archive, the days covered."""

    raw: list[pl.DataFrame] = field(default_factory=list)
    kept: list[pl.DataFrame] = field(default_factory=list)
    days: set[dt.date] = field(default_factory=set)
    files: dict[str, str] = field(default_factory=dict)
    held: dict[str, str] = field(default_factory=dict)  # the files the stored archive was built from
    downloaded: int = 0
    reused: int = 0
    bytes: int = 0
    unpublished: list[str] = field(default_factory=list)


def _as_ohlcv(history: pl.DataFrame) -> pl.DataFrame:
    return history.rename({"timestamp": "open_time"}).select(list(OHLCV_SCHEMA))


def _take_public_files(
    store: ObjectStore,
    client: PublicArchiveClient,
    interval: str,
    symbol: str,
    year: int,
    first: dt.date,
    last: dt.date,
    today: dt.date,
    progress: FileProgress | None,
) -> _PublicRows:
    held = read_source_files(store, interval, symbol, year)
    taken = _PublicRows(held=held)
    archived: pl.DataFrame | None = None
    queue = plan_archive_files(symbol, interval, first, last, today)
    while queue:
        file = queue.pop(0)
        published = client.checksum(file)
        if published is None:
            if file.period == "monthly" and today - file.last_day <= MONTHLY_FILE_DELAY:
                queue[:0] = file.daily_files()
            else:
                taken.unpublished.append(file.name)
                if progress:
                    progress(file, "unpublished")
            continue
        if held.get(file.name) == published:
            if archived is None:
                archived = _as_ohlcv(read_archive(store, interval, symbol, year)[0])
            start, end = day_start(file.first_day), day_start(file.last_day) + dt.timedelta(days=1)
            taken.kept.append(archived.filter((pl.col("open_time") >= start) & (pl.col("open_time") < end)))
            taken.reused += 1
            how = "reused"
        else:
            download = client.fetch(file, published)
            if download is None:  # withdrawn between the checksum and the file
                taken.unpublished.append(file.name)
                if progress:
                    progress(file, "unpublished")
                continue
            taken.raw.append(read_download(download))
            taken.downloaded += 1
            taken.bytes += len(download.data)
            how = "downloaded"
        taken.files[file.name] = published
        taken.days.update(file.days())
        if progress:
            progress(file, how)
    return taken


def compact_year(
    store: ObjectStore,
    interval: str,
    symbol: str,
    year: int,
    *,
    through: dt.date,
    public_archive: PublicArchiveClient | None = None,
    now: dt.datetime | None = None,
    drop_zero_volume: bool = False,
    progress: FileProgress | None = None,
) -> Compaction:
    """Build the archive of one year up to `through`, from the public archive (if given) and the hourly
    objects of the days it does not have, in one PUT."""
    first, last = year_bounds(year, through)
    now = now or dt.datetime.now(dt.UTC)
    public = (
        _take_public_files(store, public_archive, interval, symbol, year, first, last, now.date(), progress)
        if public_archive is not None
        else _PublicRows()
    )
    cleaned = (
        clean_klines(pl.concat(public.raw), interval, now=now, drop_zero_volume=drop_zero_volume)
        if public.raw
        else None
    )
    frames = [*public.kept, *([cleaned.frame] if cleaned else [])]
    hourly_days = [day for day in _days(first, last) if day not in public.days]
    objects = 0
    for run in contiguous_runs(hourly_days):
        hourly, read = read_ohlcv_days(store, interval, symbol, run[0], run[-1])
        frames.append(hourly)
        objects += read
    year_rows = pl.concat(frames).sort("open_time") if frames else pl.DataFrame(schema=OHLCV_SCHEMA)
    archive = to_history(year_rows, symbol, interval)
    key = history_key(symbol, interval, year)
    unchanged = (  # every row from the files the stored archive holds, through the same day: it is this one
        public_archive is not None
        and not public.raw
        and not hourly_days
        and public.files == public.held
        and read_compacted_through(store, key) == last
    )
    written = 0
    if not unchanged:
        key, written = write_archive(
            store, interval, symbol, year, archive, last, day_versions(year_rows, first, last), public.files
        )
    gaps = find_gaps(year_rows["open_time"], interval, day_start(first), day_start(last) + dt.timedelta(days=1))
    return Compaction(
        key=key,
        rows=archive.height,
        objects_read=objects,
        compacted_through=last,
        first_timestamp=archive["timestamp"].min() if archive.height else None,  # type: ignore[arg-type]
        last_timestamp=archive["timestamp"].max() if archive.height else None,  # type: ignore[arg-type]
        bytes_written=written,
        files_downloaded=public.downloaded,
        files_reused=public.reused,
        bytes_downloaded=public.bytes,
        days_from_hourly=len(hourly_days),
        missing_candles=sum(gap.candles for gap in gaps.gaps),
        quarantined=cleaned.quarantined.height if cleaned else 0,
        unpublished=tuple(public.unpublished),
    )


def _days(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]


def days_from_public_archive(source_files: dict[str, str]) -> set[dt.date]:
    """The days an archive took from the public archive files it records."""
    return {day for name in source_files for day in parse_archive_file_name(name).days()}


@dataclass(frozen=True)
class ArchiveComparison:
    archived: int
    expected: int
    only_in_archive: int
    only_in_hourly: int
    compacted_through: dt.date | None

    @property
    def identical(self) -> bool:
        return self.archived == self.expected and self.only_in_archive == 0 and self.only_in_hourly == 0


def compare_with_hourly(store: ObjectStore, interval: str, symbol: str, year: int) -> ArchiveComparison:
    """Row-for-row comparison of an archive with the hourly objects of the days it took from them
    (the days of its public archive files are left out: those rows are the files')."""
    archived, through = read_archive(store, interval, symbol, year)
    if through is None:
        raise ValueError(f"{history_key(symbol, interval, year)} has no {COMPACTED_THROUGH.decode()} marker")
    first, last = year_bounds(year, through)
    public_days = days_from_public_archive(read_source_files(store, interval, symbol, year))
    hourly_days = [day for day in _days(first, last) if day not in public_days]
    hourly = pl.concat(
        [read_ohlcv_days(store, interval, symbol, run[0], run[-1])[0] for run in contiguous_runs(hourly_days)]
        or [pl.DataFrame(schema=OHLCV_SCHEMA)]
    )
    expected = to_history(hourly, symbol, interval)
    archived = archived.filter(~pl.col("timestamp").dt.date().is_in(sorted(public_days)))
    return ArchiveComparison(
        archived=archived.height,
        expected=expected.height,
        only_in_archive=archived.join(expected, on=list(HISTORY_SCHEMA), how="anti", nulls_equal=True).height,
        only_in_hourly=expected.join(archived, on=list(HISTORY_SCHEMA), how="anti", nulls_equal=True).height,
        compacted_through=through,
    )
