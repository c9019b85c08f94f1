"""What the model side reads from the warehouse's dbt marts, through any reader with `query(sql)`.

The warehouse (DuckDB locally, Snowflake in prod) answers one read-only statement as a polars frame;
the marts are named as the dbt project builds them, unqualified so each deployment's default schema
applies.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Protocol

import polars as pl

from coin_platform.storage.warehouse_tables import RAW_SCHEMA, ohlcv_table

TRAINING_SET = "mart_training_set"
DECISION_OUTCOMES = "mart_decision_outcomes"
DAILY_PERFORMANCE = "mart_daily_performance"


class MartReader(Protocol):
    def query(self, sql: str) -> pl.DataFrame: ...


def read_training_set(reader: MartReader) -> pl.DataFrame:
    return reader.query(f"select * from {TRAINING_SET}")


def live_hit_rate(reader: MartReader, model_version: str) -> tuple[int, float | None]:
    """Decisions of `model_version` that acted with a known outcome, and the share that were hits."""
    if "'" in model_version:
        raise ValueError(f"model version {model_version!r} contains a quote")
    frame = reader.query(
        f"select count(*) as acted, avg(case when hit then 1.0 else 0.0 end) as hit_rate from {DECISION_OUTCOMES} "
        f"where model_version = '{model_version}' and action in ('buy', 'sell') and hit is not null"
    )
    acted = int(frame["acted"][0])
    return acted, (float(frame["hit_rate"][0]) if acted else None)


def read_daily_performance(reader: MartReader) -> pl.DataFrame:
    return reader.query(f"select * from {DAILY_PERFORMANCE} order by day, strategy")


def read_candles(
    reader: MartReader, interval: str, symbols: Sequence[str], start: dt.datetime, end: dt.datetime
) -> pl.DataFrame:
    """symbol, open_time, OHLCV of the raw candles of `symbols` opening in [start, end]."""
    names = ", ".join(f"'{s}'" for s in symbols if s.isalnum())
    return reader.query(
        f"select symbol, open_time, open, high, low, close, volume from {RAW_SCHEMA}.{ohlcv_table(interval)} "
        f"where symbol in ({names}) and open_time between '{start.isoformat()}' and '{end.isoformat()}' "
        "order by symbol, open_time"
    )
