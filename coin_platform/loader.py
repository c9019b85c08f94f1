"""Load OHLCV candles for research and services: `load_ohlcv` (polars), `load_ohlcv_data` (pandas).

Both return the columns timestamp, symbol, timeframe, open, high, low, close,
volume, sorted by timestamp then symbol. `timestamp` is the bar's open time,
UTC, in milliseconds (`Datetime("ms", "UTC")`; pandas `datetime64[ms, UTC]`)
whatever unit or zone a stored file uses; `timeframe` is upper case (`1H`).

Symbols
-------
Binance symbols (`BTCUSDT`) and coin_hts symbols (`BTC_KRW`, `ETH_USDT`: base
and quote joined by one underscore), in any case. Only Binance symbols have
hourly objects; a coin_hts symbol is read from the yearly files alone.

Dates
-----
* Timestamps inside stored files are UTC where the file says so; naive
  timestamps (coin_hts writes its daily bars at naive KST midnight) are KST.
* Query dates without an offset are Korean time (Asia/Seoul): `start_date=
  "2024-01-01"` starts at 2023-12-31 15:00 UTC. An explicit offset
  (`"2024-01-01T00:00:00+00:00"`, a tz-aware datetime or pandas Timestamp) is
  honoured.
* A date without a time (`"2024-01-31"`, a `datetime.date`) is a whole KST day:
  as `end_date` it includes that day, the range ends at the next KST midnight.
  A `datetime`/`pandas.Timestamp` is always an instant, even at midnight, and
  an `end_date` instant is inclusive: a bar opening exactly then is returned.
  Inclusive matches how people write "until 09:00"; the range is [start, end].
* A bar is returned when its open time lies in the query range; the range only
  selects bars, it never moves them. Bars are aligned to UTC like Binance's
  klines: a `1D` bar opens at 00:00 UTC (09:00 KST), a `4H` bar at 00, 04, …
  UTC. So `"2024-01-01".."2024-01-31"` in `1D` gives the UTC days Jan 1..31
  (opening 09:00 KST each), and a resampled bar always holds all of its
  stored candles, also those after the query's end. A stored timeframe keeps
  the alignment of its file: a coin_hts `1D` bar opens at KST midnight.
* Any representable date is accepted, `"0001-01-01"` .. `"9999-12-31"` included,
  and the range is clamped to where candles can be: from 2009-01-03 (Bitcoin's
  first block; no crypto market is older) until now. A range outside that is a
  404 at once, without reading. Within it, hourly objects are looked up by key
  for up to a year of hours and listed past that, so a wide range costs what is
  stored, not what is asked: a 50-year query for a symbol without data answers
  404 in about 10 ms.

Sources
-------
Stored timeframes are found from keys built from the date range (layout.py),
never by listing: the archive `history/{SYMBOL}/{TF}/{year}.parquet` (or a
plain coin_hts tree, `{SYMBOL}/{TF}/{year}.parquet`, where symbol and
timeframe columns may be missing) and the hourly objects
`ohlcv/{interval}/{SYMBOL}/{yyyy-MM-dd_HH}.parquet` of 1m, 15m and 1h. The
requested timeframe is returned as stored when it has candles in the range;
otherwise it is resampled from the finest of 1m, 15m, 1h that divides it and
has candles there (first open, max high, min low, last close, summed volume).
Each symbol has one source: where 1m covers only part of the range, the rest
is not filled in from 1h. A bar built from a partly stored window (a gap, the live edge) aggregates the
candles that are there, as Binance's still-open kline does.

Reading the stored candles is storage's (`coin_platform.storage.ohlcv.read_candles`:
archives read by row group, days rewritten since a compaction and the uncompacted
tail from the hourly objects); this module adds the user contract over it:
parameters, KST dates, HTTP-style errors and resampling.

Where
-----
`data_root` is a local directory, an `s3://bucket[/prefix]` URI, or an
ObjectStore the caller already has (the platform's resources). `s3://` URIs
and the default (the settings' bucket) take endpoint, credentials and region
from the settings: `get_settings()`, or the `settings` argument.

Errors are `LoaderError`s with an HTTP-style `status_code`: 422 for invalid
parameters, 400 for a stored file without the required columns or types, 404
when no requested symbol has candles. A symbol without candles next to others
with candles gives a `PartialResultWarning`, not an error.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import warnings
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import polars as pl
import pyarrow.fs as pafs

from coin_platform.core.intervals import (
    SUPPORTED_INTERVALS,
    UnknownIntervalError,
    interval_ms,
    normalize_interval,
)
from coin_platform.core.symbols import is_binance_symbol
from coin_platform.market.klines import SchemaMismatchError, resample_ohlcv
from coin_platform.settings import Settings, get_settings
from coin_platform.storage.layout import day_start, timeframe_label
from coin_platform.storage.object_store import IO_THREADS, ObjectStore
from coin_platform.storage.ohlcv import VALUE_COLUMNS, no_candles, read_candles

if TYPE_CHECKING:
    import pandas as pd

KST = ZoneInfo("Asia/Seoul")
COLUMNS = ("timestamp", "symbol", "timeframe", "open", "high", "low", "close", "volume")
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_EPOCH_ORDINAL = _EPOCH.toordinal()
_MS = dt.timedelta(milliseconds=1)
# No crypto candle opens before Bitcoin's genesis block (2009-01-03): the earliest a query reaches.
FIRST_CANDLE = dt.date(2009, 1, 3)
# coin_hts names its symbols BASE_QUOTE (`BTC_KRW`, `ETH_USDT`); Binance's have no underscore.
COIN_HTS_SYMBOL = re.compile(r"[A-Z0-9]{1,20}_[A-Z0-9]{1,20}")

DateLike = str | dt.date | dt.datetime


class LoaderError(Exception):
    """A request the loader cannot answer; `status_code` is what an HTTP API would return."""

    status_code = 500


class InvalidParameterError(LoaderError):
    status_code = 422


class BadSchemaError(LoaderError):
    status_code = 400


class NoDataError(LoaderError):
    status_code = 404


class PartialResultWarning(UserWarning):
    """Some requested symbols have no candles in the range; the others are returned."""


def load_ohlcv(
    symbols: str | Iterable[str],
    start_date: DateLike,
    end_date: DateLike,
    timeframe: str = "1d",
    data_root: str | os.PathLike[str] | ObjectStore | None = None,
    *,
    settings: Settings | None = None,
) -> pl.DataFrame:
    """Bars of `symbols` (a list, or one name) opening from start_date through end_date, as polars.

    The module docstring has the rules for dates, timeframes and sources.
    """
    wanted = _parse_symbols(symbols)
    interval = _parse_timeframe(timeframe)
    start_ms, end_ms = _query_range(start_date, end_date)
    store = _open_store(data_root, settings)
    label = timeframe_label(interval)
    start_ms, end_ms = max(start_ms, _epoch_ms(day_start(FIRST_CANDLE))), min(end_ms, _now_ms() + 1)
    if start_ms >= end_ms:
        raise NoDataError(
            f"no {label} candles for {', '.join(wanted)} from {start_date!r} to {end_date!r}: "
            f"candles open from {FIRST_CANDLE} until now"
        )
    with ThreadPoolExecutor(min(len(wanted), IO_THREADS)) as pool:
        frames = list(pool.map(lambda s: _load_symbol(store, s, interval, start_ms, end_ms), wanted))
    found = {s: f for s, f in zip(wanted, frames, strict=True) if not f.is_empty()}
    missing = [s for s in wanted if s not in found]
    where = f"between {_iso(start_ms)} and {_iso(end_ms)} (end exclusive) in {store.uri}"
    if not found:
        raise NoDataError(f"no {label} candles for {', '.join(missing)} {where}")
    if missing:
        warnings.warn(
            f"no {label} candles for {', '.join(missing)} {where}; returning {', '.join(found)} only",
            PartialResultWarning,
            stacklevel=2,
        )
    return (
        pl.concat(
            frame.with_columns(symbol=pl.lit(symbol), timeframe=pl.lit(label))
            for symbol, frame in found.items()
        )
        .select(COLUMNS)
        .sort("timestamp", "symbol")
    )


def load_ohlcv_data(
    symbols: str | Iterable[str],
    start_date: DateLike,
    end_date: DateLike,
    timeframe: str = "1d",
    data_root: str | os.PathLike[str] | ObjectStore | None = None,
    *,
    settings: Settings | None = None,
) -> pd.DataFrame:
    """`load_ohlcv` as a pandas DataFrame (timestamp dtype `datetime64[ms, UTC]`)."""
    frame = load_ohlcv(symbols, start_date, end_date, timeframe, data_root, settings=settings)
    return frame.to_pandas()


# --- parameters ----------------------------------------------------------------


def _parse_symbols(symbols: object) -> list[str]:
    """Upper-case, deduplicated names: Binance's (`BTCUSDT`) or coin_hts's (`BTC_KRW`)."""
    if isinstance(symbols, str):
        names: list[object] = [symbols]
    elif isinstance(symbols, Iterable) and not isinstance(symbols, bytes | bytearray):
        names = list(symbols)
    else:
        raise InvalidParameterError(
            f"symbols: expected a symbol or a list of symbols, got {type(symbols).__name__}"
        )
    if not names:
        raise InvalidParameterError("symbols: the list is empty; name at least one symbol")
    if not_text := [name for name in names if not isinstance(name, str)]:
        raise InvalidParameterError(f"symbols: {not_text!r} are not strings")
    normalized = list(dict.fromkeys(str(name).strip().upper() for name in names))
    bad = [name for name in normalized if not (name.isascii() and _is_symbol(name))]
    if bad:
        raise InvalidParameterError(
            f"symbols: {bad} are not symbols like BTCUSDT (Binance) or BTC_KRW (coin_hts)"
        )
    return normalized


def _is_symbol(name: str) -> bool:
    return is_binance_symbol(name) or bool(COIN_HTS_SYMBOL.fullmatch(name))


def _parse_timeframe(timeframe: object) -> str:
    if not isinstance(timeframe, str):
        raise InvalidParameterError(f"timeframe: expected a str like 1h, got {type(timeframe).__name__}")
    try:
        return normalize_interval(timeframe)
    except UnknownIntervalError as exc:
        raise InvalidParameterError(f"timeframe: {exc}") from None


def _query_range(start_date: DateLike, end_date: DateLike) -> tuple[int, int]:
    """[start, end) in epoch milliseconds, by the date rules of the module docstring."""
    start, _ = _parse_moment(start_date, "start_date")
    end, whole_day = _parse_moment(end_date, "end_date")
    end_ms = _epoch_ms(end) + DAY_MS if whole_day else _epoch_ms(end) + 1
    start_ms = _epoch_ms(start)
    if start_ms >= end_ms:
        raise InvalidParameterError(
            f"start_date {start_date!r} is after end_date {end_date!r}"
        )
    return start_ms, end_ms


def _parse_moment(value: object, parameter: str) -> tuple[dt.datetime, bool]:
    """A tz-aware moment, and whether `value` named a whole day (then it is KST midnight)."""
    if isinstance(value, str):
        text = value.strip()
        try:
            value = dt.date.fromisoformat(text)
        except ValueError:
            try:
                value = dt.datetime.fromisoformat(text)
            except (ValueError, OverflowError):
                raise InvalidParameterError(
                    f"{parameter}: cannot parse {text!r}; use an ISO date like 2024-01-31 "
                    "or a date and time like 2024-01-31T09:00[+09:00]"
                ) from None
    if isinstance(value, dt.datetime):  # pandas.Timestamp included
        if value != value:  # pandas.NaT, which names no moment
            raise InvalidParameterError(f"{parameter}: NaT is not a moment; give a date or a date and time")
        # A plain datetime with a fixed offset: pandas' own range and zone types stay out.
        offset = value.utcoffset()
        zone = KST if offset is None else dt.timezone(offset)
        fields = (value.hour, value.minute, value.second, value.microsecond)
        return dt.datetime(value.year, value.month, value.day, *fields, tzinfo=zone), False
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=KST), True
    raise InvalidParameterError(
        f"{parameter}: expected a str, date, datetime or pandas.Timestamp, got {type(value).__name__}"
    )


def _epoch_ms(moment: dt.datetime) -> int:
    """Milliseconds since the epoch in integers, so that year 1 and year 9999 do not overflow."""
    seconds = (moment.toordinal() - _EPOCH_ORDINAL) * 86_400 + moment.hour * 3600 + moment.minute * 60
    offset = moment.utcoffset() or dt.timedelta()
    return (seconds + moment.second) * 1000 + moment.microsecond // 1000 - offset // _MS


def _now_ms() -> int:
    return _epoch_ms(dt.datetime.now(dt.UTC))


def _utc(ms: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(milliseconds=ms)


def _iso(ms: int) -> str:
    return _utc(ms).isoformat().replace("+00:00", "Z")


def _ceil(ms: int, step_ms: int) -> int:
    return -(-ms // step_ms) * step_ms


# --- where -------------------------------------------------------------------


def _open_store(
    data_root: str | os.PathLike[str] | ObjectStore | None, settings: Settings | None
) -> ObjectStore:
    if isinstance(data_root, ObjectStore):
        return data_root
    text = None if data_root is None else os.fspath(data_root)
    if text is not None and not text.startswith("s3://"):
        # Not ObjectStore.local: that creates the directory, and a reader must not.
        return ObjectStore(pafs.LocalFileSystem(), str(Path(text).resolve()), uri=text)
    settings = settings or get_settings()
    bucket, _, prefix = (text or f"s3://{settings.s3_bucket}").removeprefix("s3://").partition("/")
    if not bucket:
        raise InvalidParameterError(f"data_root: {text!r} names no bucket; use s3://bucket[/prefix]")
    return ObjectStore.from_settings(settings, bucket=bucket, prefix=prefix)


# --- reading -----------------------------------------------------------------


def _load_symbol(store: ObjectStore, symbol: str, interval: str, start_ms: int, end_ms: int) -> pl.DataFrame:
    """The symbol's bars of `interval` opening in [start, end): stored, else resampled."""
    step = interval_ms(interval)
    # Resampled bars are aligned to UTC, so those opening in [start, end) are exactly those
    # opening in [ceil(start), ceil(end)), and their candles lie in that window too. Stored
    # bars keep their own alignment (a coin_hts 1D bar opens at KST midnight).
    first, end = _ceil(start_ms, step), _ceil(end_ms, step)
    for source in _source_intervals(interval):
        if source == interval:
            candles = _read_stored(store, symbol, source, start_ms, end_ms)
        else:
            candles = _read_stored(store, symbol, source, first, end)
        if not candles.is_empty():
            return candles if source == interval else _resample(candles, interval)
    return _no_candles()


def _no_candles() -> pl.DataFrame:
    return no_candles()


def _read_stored(store: ObjectStore, symbol: str, interval: str, first_ms: int, end_ms: int) -> pl.DataFrame:
    """Stored candles opening in [first, end) (storage.ohlcv.read_candles); a bad stored file is a 400."""
    try:
        return read_candles(store, symbol, interval, _utc(first_ms), _utc(end_ms))
    except SchemaMismatchError as exc:
        raise BadSchemaError(str(exc)) from None


def _source_intervals(interval: str) -> list[str]:
    """`interval` itself, then the finest-first stored intervals that divide it."""
    step = interval_ms(interval)
    finer = [s for s in SUPPORTED_INTERVALS if s != interval and step % interval_ms(s) == 0]
    return [interval, *finer]


def _resample(candles: pl.DataFrame, interval: str) -> pl.DataFrame:
    """Candles -> `interval` bars with the platform's aggregation (resample_ohlcv)."""
    bars = resample_ohlcv(candles, interval, time_column="timestamp")
    return bars.select("timestamp", *VALUE_COLUMNS)