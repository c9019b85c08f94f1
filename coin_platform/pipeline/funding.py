"""Partition-level funding ingestion: fetch a symbol's funding rates for (symbol, days) and store one
object per day.

The function the funding_rates asset calls; it takes a client and an object store and knows nothing
about Dagster. Consecutive days of one symbol are fetched in one paginated pass (1,000 funding times a
request: ten months at 8 h), then each day is written whole, so a rerun replaces it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

import polars as pl

from coin_platform.market.client import BinanceFuturesClient
from coin_platform.pipeline.ingest import contiguous_runs
from coin_platform.storage.funding import write_funding_day
from coin_platform.storage.layout import day_start
from coin_platform.storage.object_store import ObjectStore


@dataclass(frozen=True)
class FundingDay:
    """What one funding partition holds after a fetch: its rows (FUNDING_SCHEMA) and its object."""

    symbol: str
    day: dt.date
    key: str
    rows: pl.DataFrame


def ingest_funding(
    client: BinanceFuturesClient, store: ObjectStore, symbol: str, days: Iterable[dt.date]
) -> list[FundingDay]:
    """Fetch the funding times of `days` that have passed and store one object per day (replacing it).

    A day's funding times that are still ahead are not stored yet; the day is complete once it has
    closed, and a later run writes it whole. Each run of consecutive days is fetched before any of its
    days is written, so a failed fetch leaves those days as they were.
    """
    stored: list[FundingDay] = []
    for run in contiguous_runs(days):
        fetched = client.fetch_funding_rates(symbol, day_start(run[0]), day_start(run[-1]) + dt.timedelta(days=1))
        by_day = fetched.with_columns(_day=pl.col("funding_time").dt.date())
        for day in run:
            rows = by_day.filter(pl.col("_day") == day).drop("_day")
            stored.append(FundingDay(symbol, day, write_funding_day(store, symbol, day, rows), rows))
    return stored
