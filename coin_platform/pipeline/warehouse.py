"""The warehouse partition steps: one day's rows of a dataset, read by the platform's own reader and
shaped as its raw table (`storage.warehouse_tables`), then loaded as one partition.

The rows go to the warehouse as Arrow, read once: the candles and features from the object store
(storage.ohlcv / storage.features, hourly objects listed from the date), candidates and decisions from
the hot store (ClickHouse keeps those tables without a TTL, so every past day can be loaded again), and
orders and fills from the trading store. Timestamps are cast to UTC milliseconds, the raw tables' type.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from coin_platform.market.klines import OHLCV_SCHEMA
from coin_platform.storage.clickhouse import HotStore
from coin_platform.storage.features import read_feature_days
from coin_platform.storage.object_store import ObjectStore
from coin_platform.storage.ohlcv import read_ohlcv_days
from coin_platform.storage.signals import CANDIDATE_SCHEMA
from coin_platform.storage.warehouse import Warehouse, partition_bounds
from coin_platform.storage.warehouse_tables import (
    CANDIDATES,
    DECISIONS,
    FILLS,
    ORDERS,
    RawTable,
    features_table,
    ohlcv_table,
)
from coin_platform.trading.store import TradingStore


@dataclass(frozen=True)
class PartitionLoad:
    """What one partition load did."""

    table: str
    day: dt.date
    symbol: str | None
    rows: int


def _as_table(frame: pl.DataFrame, table: RawTable) -> pl.DataFrame:
    """`frame`'s columns of `table`, in order and of its types (zoned timestamps brought to UTC first)."""
    zoned = [c for c in table.columns if isinstance(frame.schema.get(c), pl.Datetime) and frame.schema[c].time_zone]
    return frame.with_columns(pl.col(zoned).dt.convert_time_zone("UTC")).select(
        pl.col(name).cast(dtype) for name, dtype in table.columns.items()
    )


def _contiguous(days: Sequence[dt.date]) -> list[tuple[dt.date, dt.date]]:
    """`days` as (first, last) runs of consecutive days, so a run's partitions are read range by range."""
    runs: list[tuple[dt.date, dt.date]] = []
    for day in sorted(set(days)):
        if runs and day == runs[-1][1] + dt.timedelta(days=1):
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return runs


def _by_day(frame: pl.DataFrame, symbol: str, days: Sequence[dt.date]) -> dict[dt.date, pl.DataFrame]:
    """One symbol's rows of `days` with their symbol, split by UTC day; a day without rows is empty."""
    rows = frame.select(pl.lit(symbol, pl.String).alias("symbol"), pl.all()).sort("open_time")
    split = rows.with_columns(_day=pl.col("open_time").dt.date()).partition_by("_day", as_dict=True)
    empty = rows.clear()
    return {day: split[(day,)].drop("_day") if (day,) in split else empty for day in days}


def ohlcv_rows(store: ObjectStore, interval: str, symbol: str, days: Sequence[dt.date]) -> dict[dt.date, pl.DataFrame]:
    """The stored cleaned candles of one symbol's days with their symbol, by day, as raw `ohlcv_{interval}`:
    each run of consecutive days read at once (the hourly objects in parallel)."""
    frames = [read_ohlcv_days(store, interval, symbol, first, last)[0] for first, last in _contiguous(days)]
    return _by_day(pl.concat(frames) if frames else pl.DataFrame(schema=OHLCV_SCHEMA), symbol, days)


def feature_rows(
    store: ObjectStore, interval: str, symbol: str, days: Sequence[dt.date]
) -> dict[dt.date, pl.DataFrame]:
    """The stored features of one symbol's days with their symbol, by day, as raw `features_{interval}`."""
    return _by_day(read_feature_days(store, interval, symbol, days), symbol, days)


def candidate_rows(hot_store: HotStore, intervals: Sequence[str], symbol: str, day: dt.date) -> pl.DataFrame:
    """The recorded candidates of one symbol's day on every interval, as raw `candidates`."""
    start, end = partition_bounds(day)
    frames = [hot_store.read_candidates(symbol, interval, start, end) for interval in intervals]
    frame = pl.concat(frames) if frames else pl.DataFrame(schema=CANDIDATE_SCHEMA)
    return _as_table(frame.rename({"id": "candidate_id"}), CANDIDATES)


def decision_rows(trading_store: TradingStore, day: dt.date) -> pl.DataFrame:
    """The recorded decisions whose candle closed on `day`, every symbol, as raw `decisions`."""
    start, end = partition_bounds(day)
    with trading_store.transaction() as tx:
        decisions = tx.decisions()
    frame = _as_table(decisions, DECISIONS)
    return frame.filter((pl.col("candle_close_time") >= start) & (pl.col("candle_close_time") < end))


def trading_rows(trading_store: TradingStore, day: dt.date) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The orders created and the fills made on `day`, as raw `orders` and `fills`, read in one
    transaction of the trading store."""
    start, end = partition_bounds(day)
    with trading_store.transaction() as tx:
        orders, fills = tx.orders(), tx.fills()
    orders = _as_table(orders, ORDERS).filter((pl.col("created_at") >= start) & (pl.col("created_at") < end))
    fills = _as_table(fills, FILLS).filter((pl.col("filled_at") >= start) & (pl.col("filled_at") < end))
    return orders, fills


def load_market_days(
    warehouse: Warehouse, store: ObjectStore, dataset: str, interval: str, symbol: str, days: Sequence[dt.date]
) -> list[PartitionLoad]:
    """Load one symbol's days of `ohlcv` or `features` from the object store, in one warehouse transaction."""
    if dataset == "ohlcv":
        table, read = ohlcv_table(interval), ohlcv_rows
    elif dataset == "features":
        table, read = features_table(interval), feature_rows
    else:
        raise ValueError(f"market dataset must be 'ohlcv' or 'features', not {dataset!r}")
    by_day = read(store, interval, symbol, days)
    rows = warehouse.load_partitions(table, ((frame, day, symbol) for day, frame in by_day.items()))
    return [PartitionLoad(table, day, symbol, n) for day, n in zip(by_day, rows, strict=True)]
