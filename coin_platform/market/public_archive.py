"""Binance's public kline archive: which files cover a range, downloading them verified, and parsing them.

Binance publishes every USD-M kline as zipped CSV files, monthly for closed months
and daily for closed days, each with a `.CHECKSUM` file (sha256), at
`/data/futures/um/{monthly,daily}/klines/{SYMBOL}/{interval}/{SYMBOL}-{interval}-{YYYY-MM[-DD]}.zip`.
They cost no request weight, so closed history comes from them and REST fills only the
live edge. A file not published yet answers 404: `fetch` returns None and the caller
takes those days from elsewhere.

The CSV has the 12 REST kline fields. Files from 2022 on carry a header line, older
ones none; Binance's spot archives switched to microsecond timestamps in 2025. The parser
takes both, so a file is read the same whichever way it was written.
"""

from __future__ import annotations

import calendar
import datetime as dt
import hashlib
import io
import random
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import polars as pl
import requests

from coin_platform.binance.http import TRANSPORT_ERRORS, Closing, RetryPolicy, full_jitter_s, retry_after
from coin_platform.core.time import UTC_MS
from coin_platform.market.klines import RAW_KLINE_COLUMNS, RAW_KLINE_SCHEMA

ARCHIVE_ROOT = "/data/futures/um"
# An open time above this is in microseconds: ms epochs stay below it until the year 5138.
MICROSECOND_THRESHOLD = 10**14
_CSV_SCHEMA = {name: pl.Int64() if dtype == UTC_MS else dtype for name, dtype in RAW_KLINE_SCHEMA.items()}


class MalformedArchiveError(ValueError):
    """An archive file that is not a zip of one kline CSV, or a CHECKSUM file without a sha256; names the file."""


class ChecksumMismatchError(ValueError):
    """A downloaded file whose sha256 is not its CHECKSUM file's, every time it was fetched."""


class ArchiveUnavailableError(RuntimeError):
    """The archive refused a file (a 4xx other than 404) or kept failing (5xx, timeouts) past the retries."""


@dataclass(frozen=True)
class ArchiveFile:
    """One published file: a closed month or a closed day of one symbol and interval."""

    symbol: str
    interval: str
    period: Literal["monthly", "daily"]
    first_day: dt.date

    @property
    def last_day(self) -> dt.date:
        if self.period == "daily":
            return self.first_day
        days = calendar.monthrange(self.first_day.year, self.first_day.month)[1]
        return self.first_day.replace(day=days)

    @property
    def name(self) -> str:
        stamp = self.first_day.strftime("%Y-%m" if self.period == "monthly" else "%Y-%m-%d")
        return f"{self.symbol}-{self.interval}-{stamp}.zip"

    @property
    def path(self) -> str:
        return f"{ARCHIVE_ROOT}/{self.period}/klines/{self.symbol}/{self.interval}/{self.name}"

    def days(self) -> list[dt.date]:
        return [self.first_day + dt.timedelta(days=n) for n in range((self.last_day - self.first_day).days + 1)]

    def daily_files(self) -> list[ArchiveFile]:
        """The daily files of the same days: where a month not published yet is looked for."""
        return [ArchiveFile(self.symbol, self.interval, "daily", day) for day in self.days()]


def parse_archive_file_name(name: str) -> ArchiveFile:
    """`BTCUSDT-1m-2024-03.zip` -> its ArchiveFile; ValueError naming the name when it is not one."""
    stem = name.removesuffix(".zip")
    parts = stem.split("-")
    try:
        if len(parts) == 4:
            return ArchiveFile(parts[0], parts[1], "monthly", dt.date(int(parts[2]), int(parts[3]), 1))
        if len(parts) == 5:
            return ArchiveFile(parts[0], parts[1], "daily", dt.date(int(parts[2]), int(parts[3]), int(parts[4])))
    except ValueError:
        pass
    raise ValueError(f"{name!r} is not an archive file name (SYMBOL-INTERVAL-YYYY-MM[-DD].zip)")


def plan_archive_files(symbol: str, interval: str, first: dt.date, last: dt.date, today: dt.date) -> list[ArchiveFile]:
    """The files covering first..last: a month wholly inside the range and closed before `today`'s month
    as one monthly file, the other days (up to yesterday) as daily files. Days from today on have none."""
    last = min(last, today - dt.timedelta(days=1))
    files: list[ArchiveFile] = []
    month = first.replace(day=1)
    while month <= last:
        monthly = ArchiveFile(symbol, interval, "monthly", month)
        if first <= month and monthly.last_day <= last and monthly.last_day < today.replace(day=1):
            files.append(monthly)
        else:
            files += [f for f in monthly.daily_files() if first <= f.first_day <= last]
        month = monthly.last_day + dt.timedelta(days=1)
    return files


def parse_checksum(text: bytes, name: str) -> str:
    """The sha256 of a `.CHECKSUM` file (`<hex>  <file name>`), checked to name `name`."""
    fields = text.decode("ascii", "replace").split()
    digest = fields[0].lower() if fields else ""
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise MalformedArchiveError(f"{name}.CHECKSUM holds no sha256: {text[:80]!r}")
    if len(fields) > 1 and fields[1] != name:
        raise MalformedArchiveError(f"{name}.CHECKSUM is the checksum of {fields[1]!r}")
    return digest


def read_archive_zip(data: bytes, name: str) -> bytes:
    """The one CSV inside an archive zip."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = [m for m in archive.namelist() if not m.endswith("/")]
            if len(members) != 1:
                raise MalformedArchiveError(f"{name} holds {len(members)} files, expected one CSV: {members[:3]}")
            return archive.read(members[0])
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError) as exc:
        if isinstance(exc, MalformedArchiveError):
            raise
        raise MalformedArchiveError(f"{name} is not a readable zip: {exc}") from None


def parse_archive_csv(data: bytes, name: str) -> pl.DataFrame:
    """An archive CSV -> typed raw klines (RAW_KLINE_SCHEMA), with or without its header line,
    open and close times in ms whether the file has ms or µs. Names the file on a bad row."""
    if not data.strip():
        return pl.DataFrame(schema=RAW_KLINE_SCHEMA)
    lines = data.lstrip().split(b"\n", 2)
    has_header = not lines[0][:1].isdigit()
    first_row = lines[1] if has_header and len(lines) > 1 else lines[0]
    if (columns := first_row.count(b",") + 1) != len(RAW_KLINE_COLUMNS) and first_row.strip():
        raise MalformedArchiveError(f"{name} has {columns} columns, expected {len(RAW_KLINE_COLUMNS)}")
    try:
        frame = pl.read_csv(
            data,
            has_header=has_header,
            new_columns=list(RAW_KLINE_COLUMNS),
            schema_overrides=_CSV_SCHEMA,
            raise_if_empty=False,
        )
    except pl.exceptions.PolarsError as exc:
        raise MalformedArchiveError(f"{name} is not a 12-field kline CSV: {str(exc).splitlines()[0]}") from None
    times = [
        pl.when(pl.col(c) >= MICROSECOND_THRESHOLD).then(pl.col(c) // 1000).otherwise(pl.col(c)).cast(UTC_MS)
        for c in ("open_time", "close_time")
    ]
    return frame.with_columns(times).select(list(RAW_KLINE_SCHEMA))


@dataclass(frozen=True)
class Download:
    """A verified archive file: its bytes and sha256, and how many attempts it took."""

    file: ArchiveFile
    data: bytes
    sha256: str
    attempts: int


class PublicArchiveClient(Closing):
    """GETs archive files and their checksums, retrying 429, 5xx, dropped connections and corrupt downloads
    with full jitter; a 404 is an answer (not published), never retried."""

    def __init__(
        self,
        base_url: str,
        *,
        session: requests.Session | None = None,
        timeout_s: float = 60.0,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session or requests.Session()
        self.timeout_s = timeout_s
        self.policy = policy or RetryPolicy()
        self._sleep = sleep
        self._rng = rng or random.Random()
        self.stats = {"requests": 0, "retries": 0, "bytes": 0}

    def __repr__(self) -> str:
        return f"PublicArchiveClient(base_url={self.base_url!r})"

    def close(self) -> None:
        self.session.close()

    def checksum(self, file: ArchiveFile) -> str | None:
        """The published sha256 of `file`, or None when it is not published."""
        text = self._get(f"{file.path}.CHECKSUM", f"{file.name}.CHECKSUM")
        return None if text is None else parse_checksum(text, file.name)

    def fetch(self, file: ArchiveFile, expected_sha256: str | None = None) -> Download | None:
        """`file`'s bytes, checked against its CHECKSUM (fetched unless given); None when not published."""
        expected = expected_sha256 or self.checksum(file)
        if expected is None:
            return None
        for attempt in range(1, self.policy.max_retries + 2):
            data = self._get(file.path, file.name)
            if data is None:
                return None
            digest = hashlib.sha256(data).hexdigest()
            if digest == expected:
                return Download(file, data, digest, attempt)
            if attempt <= self.policy.max_retries:
                self.stats["retries"] += 1
                self._sleep(full_jitter_s(self._rng, attempt, self.policy))
        raise ChecksumMismatchError(
            f"{file.name}: sha256 {digest} is not the published {expected}, "
            f"{self.policy.max_retries + 1} downloads in a row"
        )

    def _get(self, path: str, name: str) -> bytes | None:
        failures = 0
        while True:
            self.stats["requests"] += 1
            try:
                response = self.session.get(f"{self.base_url}{path}", timeout=self.timeout_s)
                body = response.content
            except TRANSPORT_ERRORS as exc:
                problem = type(exc).__name__
                wait = None
            else:
                if response.status_code == 200:
                    self.stats["bytes"] += len(body)
                    return body
                if response.status_code == 404:
                    return None
                if response.status_code != 429 and response.status_code < 500:
                    raise ArchiveUnavailableError(f"{name}: the archive answered HTTP {response.status_code}")
                problem = f"HTTP {response.status_code}"
                wait = retry_after(response.headers)
            failures += 1
            if failures > self.policy.max_retries:
                raise ArchiveUnavailableError(f"{name} failed {failures} times; last problem: {problem}")
            self.stats["retries"] += 1
            self._sleep(wait if wait is not None else full_jitter_s(self._rng, failures, self.policy))


def read_download(download: Download) -> pl.DataFrame:
    """A verified download's klines."""
    return parse_archive_csv(read_archive_zip(download.data, download.file.name), download.file.name)
