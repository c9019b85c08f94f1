"""The warehouse's raw tables, named and typed once.

The loaders write them (one table per dataset the platform produces, a partition at a time) and the
dbt project reads them as its sources, so both sides take names, columns and keys from here. Column
names are the platform's own (the parquet and hot-store schemas); ids are spelled out
(`candidate_id`, `decision_id`) so joins read plainly. Every timestamp is UTC.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from coin_platform.core.intervals import SUPPORTED_INTERVALS
from coin_platform.core.time import UTC_MS
from coin_platform.features import FEATURE_SCHEMA
from coin_platform.market.klines import OHLCV_SCHEMA
from coin_platform.storage.signals import CANDIDATE_SCHEMA

# The schema (DuckDB) or Snowflake schema the raw tables live in; dbt builds its models beside it.
RAW_SCHEMA = "raw"


@dataclass(frozen=True)
class RawTable:
    """One raw table: its columns in order, the key a row is unique by, and the column whose UTC day
    is the partition a load replaces."""

    name: str
    columns: dict[str, pl.DataType]
    key: tuple[str, ...]
    day_column: str

    def __post_init__(self) -> None:
        missing = [c for c in (*self.key, self.day_column) if c not in self.columns]
        if missing:
            raise ValueError(f"raw table {self.name}: {missing} are not among its columns")


def ohlcv_table(interval: str) -> str:
    return f"ohlcv_{interval}"


def features_table(interval: str) -> str:
    return f"features_{interval}"


def _hot_store_columns(schema: dict[str, pl.DataType], id_name: str) -> dict[str, pl.DataType]:
    """A hot-store table's columns as the warehouse keeps them: its id spelled out, without the row version
    (the hot store's ReplacingMergeTree keeps the newest; the warehouse holds one row per id)."""
    return {(id_name if name == "id" else name): dtype for name, dtype in schema.items() if name != "version"}


# `features` (candidates) and `inputs` (decisions) are JSON objects; `published_at` is null for what was
# never published (backfilled history).
CANDIDATES = RawTable(
    name="candidates",
    columns=_hot_store_columns(CANDIDATE_SCHEMA, "candidate_id"),
    key=("candidate_id",),
    day_column="open_time",
)

# The trading store's tables (trading/store.py), which storage may not import; the decisions, orders and fills
# loads check their rows against these columns, so a drift fails there.
DECISIONS = RawTable(
    name="decisions",
    columns={
        "decision_id": pl.String(),
        "candidate_id": pl.String(),
        "strategy": pl.String(),
        "symbol": pl.String(),
        "interval": pl.String(),
        "signal": pl.String(),
        "action": pl.String(),
        "confidence": pl.Float64(),
        "model_version": pl.String(),
        "price": pl.Float64(),
        "candle_close_time": UTC_MS,
        "inputs": pl.String(),
        "decided_at": UTC_MS,
        "published_at": UTC_MS,
    },
    key=("decision_id",),
    day_column="candle_close_time",
)

ORDERS = RawTable(
    name="orders",
    columns={
        "client_order_id": pl.String(),
        "decision_id": pl.String(),
        "strategy": pl.String(),
        "signal": pl.String(),
        "symbol": pl.String(),
        "side": pl.String(),
        "quantity": pl.Float64(),
        "reduce_only": pl.Boolean(),
        "reference_price": pl.Float64(),
        "status": pl.String(),
        "broker": pl.String(),
        "exchange_order_id": pl.String(),
        "filled_quantity": pl.Float64(),
        "average_price": pl.Float64(),
        "fees": pl.Float64(),
        "reason": pl.String(),
        "created_at": UTC_MS,
    },
    key=("client_order_id",),
    day_column="created_at",
)

FILLS = RawTable(
    name="fills",
    columns={
        "client_order_id": pl.String(),
        "seq": pl.Int32(),
        "symbol": pl.String(),
        "side": pl.String(),
        "price": pl.Float64(),
        "quantity": pl.Float64(),
        "fee": pl.Float64(),
        "realized_pnl": pl.Float64(),  # net of this fill's fee
        "filled_at": UTC_MS,
    },
    key=("client_order_id", "seq"),
    day_column="filled_at",
)


def _market_tables() -> dict[str, RawTable]:
    tables = {}
    for interval in SUPPORTED_INTERVALS:
        ohlcv = RawTable(
            name=ohlcv_table(interval),
            columns={"symbol": pl.String(), **OHLCV_SCHEMA},
            key=("symbol", "open_time"),
            day_column="open_time",
        )
        features = RawTable(
            name=features_table(interval),
            columns={"symbol": pl.String(), **FEATURE_SCHEMA},
            key=("symbol", "open_time"),
            day_column="open_time",
        )
        tables[ohlcv.name] = ohlcv
        tables[features.name] = features
    return tables


RAW_TABLES: dict[str, RawTable] = {**_market_tables(), **{t.name: t for t in (CANDIDATES, DECISIONS, ORDERS, FILLS)}}
