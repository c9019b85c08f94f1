"""Where every dataset lives in the object store; the one place that builds keys.

Keys are built from dates and symbols, never discovered by globbing, so a
reader knows its object list before it touches the store.
"""

from __future__ import annotations

import datetime as dt

HOURS_PER_DAY = 24


def day_start(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def raw_klines_key(interval: str, symbol: str, day: dt.date) -> str:
    """Raw klines, one object per UTC day: `raw/klines/{interval}/{symbol}/{yyyy-MM-dd}.parquet`."""
    return f"raw/klines/{interval}/{symbol}/{day:%Y-%m-%d}.parquet"


def funding_prefix(symbol: str) -> str:
    return f"funding/{symbol}/"


def funding_key(symbol: str, day: dt.date) -> str:
    """Funding rates, one object per symbol and UTC day: `funding/{symbol}/{yyyy-MM-dd}.parquet`."""
    return f"{funding_prefix(symbol)}{day:%Y-%m-%d}.parquet"


def funding_key_day(key: str) -> dt.date | None:
    """The UTC day a `funding_key` names, or None for a key of another shape."""
    try:
        return dt.datetime.strptime(key.rpartition("/")[2], "%Y-%m-%d.parquet").date()
    except ValueError:
        return None


def hourly_prefix(dataset: str, interval: str, symbol: str) -> str:
    return f"{dataset}/{interval}/{symbol}/"


def hourly_key(dataset: str, interval: str, symbol: str, hour: dt.datetime) -> str:
    """One UTC hour of an hourly dataset: `{dataset}/{interval}/{symbol}/{yyyy-MM-dd_HH}.parquet`."""
    return f"{hourly_prefix(dataset, interval, symbol)}{hour:%Y-%m-%d_%H}.parquet"


def hourly_day_keys(dataset: str, interval: str, symbol: str, day: dt.date) -> list[str]:
    """The 24 hourly objects of one UTC day, in time order."""
    start = day_start(day)
    return [hourly_key(dataset, interval, symbol, start + dt.timedelta(hours=hour)) for hour in range(HOURS_PER_DAY)]


def ohlcv_prefix(interval: str, symbol: str) -> str:
    return hourly_prefix("ohlcv", interval, symbol)


def ohlcv_key(interval: str, symbol: str, hour: dt.datetime) -> str:
    """Cleaned OHLCV, one object per UTC hour: `ohlcv/{interval}/{symbol}/{yyyy-MM-dd_HH}.parquet`."""
    return hourly_key("ohlcv", interval, symbol, hour)


def ohlcv_key_hour(key: str) -> dt.datetime | None:
    """The UTC hour an `ohlcv_key` names, or None for a key of another shape."""
    try:
        return dt.datetime.strptime(key.rpartition("/")[2], "%Y-%m-%d_%H.parquet").replace(tzinfo=dt.UTC)
    except ValueError:
        return None


def ohlcv_day_keys(interval: str, symbol: str, day: dt.date) -> list[str]:
    """The 24 hourly OHLCV objects of one UTC day, in time order."""
    return hourly_day_keys("ohlcv", interval, symbol, day)


def ohlcv_versions_prefix(interval: str, symbol: str, year: int) -> str:
    """Which days of a year the OHLCV writer wrote, and with which rows: one empty object per
    day, `ohlcv_versions/{interval}/{symbol}/{year}/{yyyy-MM-dd}.{version}`."""
    return f"ohlcv_versions/{interval}/{symbol}/{year}/"


def ohlcv_version_key(interval: str, symbol: str, day: dt.date, version: str) -> str:
    return f"{ohlcv_versions_prefix(interval, symbol, day.year)}{day:%Y-%m-%d}.{version}"


def ohlcv_version_of(key: str) -> tuple[dt.date, str] | None:
    """The day and version an `ohlcv_version_key` names, or None for a key of another shape."""
    day, _, version = key.rpartition("/")[2].partition(".")
    try:
        return dt.date.fromisoformat(day), version
    except ValueError:
        return None


def features_key(interval: str, symbol: str, hour: dt.datetime) -> str:
    """Indicator features, one object per UTC hour: `features/{interval}/{symbol}/{yyyy-MM-dd_HH}.parquet`."""
    return hourly_key("features", interval, symbol, hour)


def features_day_keys(interval: str, symbol: str, day: dt.date) -> list[str]:
    """The 24 hourly feature objects of one UTC day, in time order."""
    return hourly_day_keys("features", interval, symbol, day)


def timeframe_label(interval: str) -> str:
    """coin_hts spelling of an interval: `1m` -> `1M`, `15m` -> `15M`, `1h` -> `1H`."""
    return interval.upper()


def history_key(symbol: str, interval: str, year: int) -> str:
    """The compacted archive, one object per symbol, interval and year (coin_hts layout):
    `history/{SYMBOL}/{TIMEFRAME}/{year}.parquet`."""
    return f"history/{symbol}/{timeframe_label(interval)}/{year}.parquet"


def coin_hts_key(symbol: str, interval: str, year: int) -> str:
    """A plain coin_hts tree's layout, `{SYMBOL}/{TIMEFRAME}/{year}.parquet` under its DATA_ROOT."""
    return history_key(symbol, interval, year).removeprefix("history/")


def ohlcv_keys_between(interval: str, symbol: str, first: dt.date, last: dt.date) -> list[str]:
    """The hourly OHLCV objects of the days first..last (inclusive), in time order."""
    days = (last - first).days + 1
    return [
        key
        for offset in range(max(days, 0))
        for key in ohlcv_day_keys(interval, symbol, first + dt.timedelta(days=offset))
    ]


# A Dagster run id (a UUID) or any id of letters, digits and dashes: never a path.
_RUN_ID_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")


def backtest_key(run_id: str, name: str) -> str:
    """One output of one backtest run: `backtests/{run_id}/{name}` (report.html, summary.json, *.png, ...)."""
    if not run_id or len(run_id) > 64 or not set(run_id) <= _RUN_ID_CHARACTERS:
        raise ValueError(f"a backtest run id is 1-64 letters, digits or dashes, got {run_id[:80]!r}")
    return f"backtests/{run_id}/{name}"
