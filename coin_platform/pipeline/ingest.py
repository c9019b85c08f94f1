"""Partition-level ingestion: fetch raw klines for (symbol, days) and build hourly OHLCV files.

These are the functions the Dagster assets call; they take a client and an
object store and know nothing about Dagster. A run may cover many days, so
contiguous days of one symbol are fetched in one paginated pass.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field

import polars as pl

from coin_platform.core.intervals import DAY_MS, interval_ms
from coin_platform.market.client import BinanceFuturesClient
from coin_platform.market.klines import RAW_KLINE_SCHEMA, Gap, clean_klines, find_gaps
from coin_platform.storage.layout import day_start, raw_klines_key
from coin_platform.storage.object_store import ObjectStore
from coin_platform.storage.ohlcv import write_ohlcv_day
from coin_platform.storage.raw_klines import read_raw_day, write_raw_day


class MissingUpstreamError(RuntimeError):
    """A cleaned partition was requested before its raw partition exists."""


def contiguous_runs(days: Iterable[dt.date]) -> list[list[dt.date]]:
    """[1, 2, 3, 5, 6] -> [[1, 2, 3], [5, 6]] for dates: one fetch per run."""
    runs: list[list[dt.date]] = []
    for day in sorted(set(days)):
        if runs and day - runs[-1][-1] == dt.timedelta(days=1):
            runs[-1].append(day)
        else:
            runs.append([day])
    return runs


def _day_of(frame: pl.DataFrame, day: dt.date) -> pl.DataFrame:
    start = day_start(day)
    end = start + dt.timedelta(days=1)
    return frame.filter((pl.col("open_time") >= start) & (pl.col("open_time") < end))


@dataclass(frozen=True)
class RawDay:
    """What one raw partition holds after a fetch."""

    symbol: str
    day: dt.date
    rows: int
    fetched: int
    key: str


def _is_complete(frame: pl.DataFrame, day: dt.date, step_ms: int) -> bool:
    if frame.is_empty():
        return False
    last_open = int(frame["open_time"].dt.epoch("ms").max())
    return last_open >= int(day_start(day).timestamp() * 1000) + DAY_MS - step_ms


def ingest_raw_klines(
    client: BinanceFuturesClient,
    store: ObjectStore,
    interval: str,
    symbol: str,
    days: Iterable[dt.date],
    *,
    only_missing: bool,
) -> list[RawDay]:
    """Fetch the closed candles of `days` and store one raw object per day.

    With `only_missing`, a day's stored candles are kept and only what comes
    after the last stored candle is fetched (the live schedules); otherwise
    each day is fetched again whole, which is how a bad partition is repaired.
    """
    step = interval_ms(interval)
    results: list[RawDay] = []
    for run in contiguous_runs(days):
        stored: dict[dt.date, pl.DataFrame] = {}
        fetch_from = day_start(run[0])
        if only_missing:
            for day in run:
                frame = read_raw_day(store, interval, symbol, day)
                if frame is None:
                    frame = pl.DataFrame(schema=RAW_KLINE_SCHEMA)
                stored[day] = frame
                if _is_complete(frame, day, step):
                    fetch_from = day_start(day) + dt.timedelta(days=1)
                    continue
                if not frame.is_empty():
                    last_open = frame["open_time"].max()
                    fetch_from = last_open + dt.timedelta(milliseconds=step)  # type: ignore[operator]
                break
        run_end = day_start(run[-1]) + dt.timedelta(days=1)
        fetched = (
            client.fetch_klines(symbol, interval, fetch_from, run_end)
            if fetch_from < run_end
            else pl.DataFrame(schema=RAW_KLINE_SCHEMA)
        )
        for day in run:
            if day_start(day) + dt.timedelta(days=1) <= fetch_from:
                continue  # complete already; nothing fetched for it
            new_rows = _day_of(fetched, day)
            previous = stored.get(day)
            frame = (
                pl.concat([previous, new_rows]).sort("open_time", maintain_order=True)
                if previous is not None
                else new_rows
            )
            key = write_raw_day(store, interval, symbol, day, frame)
            results.append(
                RawDay(symbol=symbol, day=day, rows=frame.height, fetched=new_rows.height, key=key)
            )
    return results


@dataclass(frozen=True)
class Quarantined:
    """A candle cleaning refused: its open time and what was impossible about it."""

    open_time: dt.datetime
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"open_time": self.open_time.isoformat(), "reason": self.reason}


@dataclass(frozen=True)
class OhlcvDay:
    """What one cleaned partition holds, and what cleaning found."""

    symbol: str
    day: dt.date
    rows: int
    first_open: dt.datetime | None
    last_open: dt.datetime | None
    expected: int
    gaps: list[Gap] = field(default_factory=list)
    files_written: int = 0
    files_deleted: int = 0
    duplicates_dropped: int = 0
    unclosed_dropped: int = 0
    misaligned_dropped: int = 0
    zero_volume_dropped: int = 0
    quarantined: tuple[Quarantined, ...] = ()

    @property
    def missing(self) -> int:
        return sum(gap.candles for gap in self.gaps)


def covered_until(day: dt.date, interval: str, now: dt.datetime) -> dt.datetime:
    """End of the part of `day` whose candles have closed by `now`."""
    step = interval_ms(interval)
    now_ms = int(now.timestamp() * 1000)
    closed_end = dt.datetime.fromtimestamp((now_ms // step) * step / 1000, tz=dt.UTC)
    return min(day_start(day) + dt.timedelta(days=1), max(day_start(day), closed_end))


def build_ohlcv_day(
    store: ObjectStore,
    interval: str,
    symbol: str,
    day: dt.date,
    *,
    now: dt.datetime,
    drop_zero_volume: bool,
    only_missing: bool,
) -> OhlcvDay:
    """Clean one raw partition and write it as hourly OHLCV objects.

    A quarantined candle (see `clean_klines`) is left out: the day has a gap
    there, reported with the others, and the candle is listed in `quarantined`.
    Hours left without rows lose any stale object, so a rerun leaves exactly
    the objects a first run would. With `only_missing`, hours before the
    newest stored hour are left alone (the live edge only touches its tail).
    """
    raw = read_raw_day(store, interval, symbol, day)
    if raw is None:
        raise MissingUpstreamError(
            f"raw klines for {symbol} {interval} {day} are not stored ({raw_klines_key(interval, symbol, day)}); "
            f"materialize raw_klines_{interval} for this partition first"
        )
    cleaned = clean_klines(raw, interval, now=now, drop_zero_volume=drop_zero_volume)
    frame = _day_of(cleaned.frame, day)
    end = covered_until(day, interval, now)
    report = find_gaps(frame["open_time"], interval, day_start(day), end)
    hours_closed = -(-int((end - day_start(day)).total_seconds()) // 3600)
    written, deleted = write_ohlcv_day(
        store, interval, symbol, day, frame, hours_closed=hours_closed, only_missing=only_missing
    )
    return OhlcvDay(
        symbol=symbol,
        day=day,
        rows=frame.height,
        first_open=frame["open_time"].min() if frame.height else None,  # type: ignore[arg-type]
        last_open=frame["open_time"].max() if frame.height else None,  # type: ignore[arg-type]
        expected=report.expected,
        gaps=report.gaps,
        files_written=written,
        files_deleted=deleted,
        duplicates_dropped=cleaned.duplicates_dropped,
        unclosed_dropped=cleaned.unclosed_dropped,
        misaligned_dropped=cleaned.misaligned_dropped,
        zero_volume_dropped=cleaned.zero_volume_dropped,
        quarantined=tuple(Quarantined(*row) for row in _day_of(cleaned.quarantined, day).iter_rows()),
    )
