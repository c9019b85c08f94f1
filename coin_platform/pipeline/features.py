"""The feature partition step: read a symbol's days plus their look-back, compute, store.

See `coin_platform.features.compute` for why `LOOKBACK_CANDLES` of history make a
day's values equal those of a full-history computation.
"""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict
from dataclasses import dataclass

import polars as pl

from coin_platform.core.intervals import interval_ms
from coin_platform.features import FEATURE_SCHEMA, LOOKBACK_CANDLES, compute_features
from coin_platform.storage.archive import read_day_versions
from coin_platform.storage.features import write_feature_days
from coin_platform.storage.layout import day_start, timeframe_label
from coin_platform.storage.object_store import ObjectStore
from coin_platform.storage.ohlcv import read_candles


@dataclass(frozen=True)
class FeatureBuild:
    """What `build_feature_days` did for one symbol."""

    symbol: str
    days: tuple[dt.date, ...]
    rows: int
    warmup_rows: int
    history_rows: int
    first_open: dt.datetime | None
    last_open: dt.datetime | None
    files_written: int
    files_deleted: int
    frame: pl.DataFrame  # the features written (FEATURE_COLUMNS), for previews


def read_lookback(
    store: ObjectStore, interval: str, symbol: str, start: dt.datetime, last_day: dt.date
) -> pl.DataFrame:
    """The symbol's stored `interval` candles from `start` through the end of `last_day` (empty if none),
    in the loader's columns (timestamp, symbol, timeframe, OHLCV), read by storage's range reader.

    A range read before in this process whose days still have the same written versions (one
    listing per year) is not read again: the ingest run's candidate detection reads the look-back
    its feature build has just read. Versions fingerprint a day's rows, so the rows are the same.
    """
    versions = _written_versions(store, interval, symbol, start.astimezone(dt.UTC).date(), last_day)
    memo_key = (store.uri, interval, symbol, start, last_day, versions)
    if versions is not None and (remembered := _LOOKBACK_MEMO.get(memo_key)) is not None:
        _LOOKBACK_MEMO.move_to_end(memo_key)
        return remembered
    candles = read_candles(store, symbol, interval, start, day_start(last_day) + dt.timedelta(days=1))
    if candles.is_empty():
        return pl.DataFrame()
    labels = candles.with_columns(symbol=pl.lit(symbol), timeframe=pl.lit(timeframe_label(interval)))
    lookback = labels.select("timestamp", "symbol", "timeframe", "open", "high", "low", "close", "volume")
    if versions is not None:
        _LOOKBACK_MEMO[memo_key] = lookback
        while len(_LOOKBACK_MEMO) > LOOKBACK_MEMO_ENTRIES:
            _LOOKBACK_MEMO.popitem(last=False)
    return lookback


# Look-back reads of this process by (store, interval, symbol, start, last day, day versions), newest last.
LOOKBACK_MEMO_ENTRIES = 64
_LOOKBACK_MEMO: OrderedDict[tuple, pl.DataFrame] = OrderedDict()


def _written_versions(
    store: ObjectStore, interval: str, symbol: str, first: dt.date, last: dt.date
) -> tuple[str, ...] | None:
    """The OHLCV writer's version of every day first..last, listed before the rows are read (a day
    written meanwhile then has a new version); None when a day has no single version, as for
    objects the writer did not write (then nothing proves a second read sees the same rows)."""
    recorded: dict[dt.date, set[str]] = {}
    for year in range(first.year, last.year + 1):
        recorded.update(read_day_versions(store, interval, symbol, year))
    days = [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]
    if any(len(recorded.get(day, ())) != 1 for day in days):
        return None
    return tuple(next(iter(recorded[day])) for day in days)


def lookback_start(first_day: dt.date, interval: str, history_start: dt.date, lookback_candles: int) -> dt.datetime:
    """Where a build of `first_day` starts reading: `lookback_candles` back, not before the history start.

    EMA, RSI, ATR and MACD forget their seed geometrically: after 5,000 candles the
    slowest (EMA 50) keeps (49/51)**5000 ≈ 1e-87 of it, far below float precision, so
    the values equal a computation over the whole history while a build reads a
    bounded range (2,000-odd GETs of hourly objects at most, for 1m).
    """
    back = day_start(first_day) - dt.timedelta(milliseconds=lookback_candles * interval_ms(interval))
    return max(day_start(history_start), back)


def build_feature_days(
    store: ObjectStore,
    interval: str,
    symbol: str,
    days: list[dt.date],
    history_start: dt.date,
    lookback_candles: int = LOOKBACK_CANDLES,
) -> FeatureBuild:
    """Compute the features of `days` (with `lookback_candles` of history before them) and
    write them as hourly objects.

    Hours of those days that now have no candles lose any feature object stored before.
    """
    days = sorted(set(days))
    start = lookback_start(days[0], interval, history_start, lookback_candles)
    lookback = read_lookback(store, interval, symbol, start, days[-1])
    first = day_start(days[0])
    if lookback.is_empty():
        features = pl.DataFrame(schema=FEATURE_SCHEMA)
        warmup = 0
    else:
        warmup = lookback.filter(pl.col("timestamp") < first).height
        features = compute_features(lookback, interval, since=first).drop("symbol")
    written = features.filter(pl.col("open_time").dt.date().is_in(days))
    files_written, files_deleted = write_feature_days(store, interval, symbol, days, written)
    return FeatureBuild(
        symbol=symbol,
        days=tuple(days),
        rows=written.height,
        warmup_rows=warmup,
        history_rows=lookback.height,
        first_open=written["open_time"].min() if written.height else None,  # type: ignore[arg-type]
        last_open=written["open_time"].max() if written.height else None,  # type: ignore[arg-type]
        files_written=files_written,
        files_deleted=files_deleted,
        frame=written,
    )
