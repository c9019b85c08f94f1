"""Funding rates, the dataset's one writer (`write_funding_day`) and reader (`read_funding`): one object per
symbol and UTC day, `funding/{symbol}/{yyyy-MM-dd}.parquet` (layout.py), rows in FUNDING_SCHEMA
(`coin_platform.market.funding`) sorted by funding time.

A day is stored whole in one object, so a rerun of a partition is one PUT that replaces it (the same rows
give the same bytes), and a day fetched without any funding time is an empty object, not a missing one.
The reader builds its object list from the date range; past a year of days per symbol it lists the
symbol's stored objects instead (one request per 1,000 objects rather than one per day asked).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import polars as pl

from coin_platform.core.symbols import is_binance_symbol
from coin_platform.market.funding import FUNDING_SCHEMA, empty_funding
from coin_platform.market.klines import require_schema
from coin_platform.storage.layout import day_start, funding_key, funding_key_day, funding_prefix
from coin_platform.storage.object_store import ObjectStore
from coin_platform.storage.ohlcv import read_hours

# More days than a year's per symbol are found by one listing of the symbol's objects.
LIST_ABOVE_DAYS = 366


class FundingFrameError(ValueError):
    """A frame handed to the writer that is not one symbol's funding rates of one day; names the problem."""


def write_funding_day(store: ObjectStore, symbol: str, day: dt.date, frame: pl.DataFrame) -> str:
    """Store the funding rates of `symbol` on UTC `day` in one object (replacing it), sorted by funding time;
    returns its key.

    Raises before anything is written: SchemaMismatchError when the columns or types are not FUNDING_SCHEMA,
    FundingFrameError naming the first row of another symbol, outside the day, or with a time already seen.
    """
    key = funding_key(symbol, day)
    rows = require_schema(frame, FUNDING_SCHEMA, f"funding rates for {key}").sort("funding_time")
    start = day_start(day)
    problems = {
        f"symbol is not {symbol}": pl.col("symbol").ne_missing(symbol),
        "funding_time is missing": pl.col("funding_time").is_null(),
        f"funding_time is outside {day}": ~pl.col("funding_time").is_between(
            start, start + dt.timedelta(days=1), closed="left"
        ),
        "funding_time is duplicated": pl.col("funding_time").is_duplicated(),
    }
    for problem, rule in problems.items():
        bad = rows.filter(rule.fill_null(False))
        if not bad.is_empty():
            raise FundingFrameError(f"cannot store {key}: {bad.height} row(s) where {problem}, first {bad.row(0)}")
    store.write_parquet(key, rows)
    return key


def read_funding(store: ObjectStore, symbols: Sequence[str], start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
    """The stored funding rates of `symbols` with funding time in [start, end), sorted by funding time, then
    symbol: columns FUNDING_SCHEMA (`symbol`, `funding_time` UTC ms, `funding_rate`, `mark_price` nullable).

    Days not stored are skipped (empty when none is). Raises ValueError for a symbol that is not a Binance
    symbol or a naive `start`/`end`, SchemaMismatchError naming an object whose columns differ.
    """
    for name, moment in (("start", start), ("end", end)):
        if moment.tzinfo is None:
            raise ValueError(f"{name} {moment} has no timezone; funding times are UTC instants")
    for symbol in symbols:
        if not is_binance_symbol(symbol):
            raise ValueError(f"invalid symbol {symbol!r}: expected a Binance symbol like BTCUSDT")
    if end <= start:
        return empty_funding()
    first = start.astimezone(dt.UTC).date()
    last = (end.astimezone(dt.UTC) - dt.timedelta(milliseconds=1)).date()
    keys = [key for symbol in dict.fromkeys(symbols) for key in _day_keys(store, symbol, first, last)]
    frames = read_hours(store, keys, FUNDING_SCHEMA)
    if not frames:
        return empty_funding()
    window = pl.col("funding_time").is_between(start, end, closed="left")
    return pl.concat(frames).filter(window).sort("funding_time", "symbol", maintain_order=True)


def _day_keys(store: ObjectStore, symbol: str, first: dt.date, last: dt.date) -> list[str]:
    """The objects of `symbol`'s days first..last: built from the dates, or listed past LIST_ABOVE_DAYS."""
    days = (last - first).days + 1
    if days <= LIST_ABOVE_DAYS:
        return [funding_key(symbol, first + dt.timedelta(days=offset)) for offset in range(days)]
    return [
        key
        for key in store.list_keys(funding_prefix(symbol))
        if (day := funding_key_day(key)) is not None and first <= day <= last
    ]
