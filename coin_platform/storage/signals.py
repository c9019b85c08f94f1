"""Candidates in ClickHouse: what was detected and published. (Decisions live in the trading store, beside the
orders they lead to; `decisions_table` stays as the DDL of an applied migration, which a later one drops.)

Rows are keyed by their deterministic ids (ReplacingMergeTree on a version), so
writing a record again replaces it instead of adding one. `published_at` says
whether a record already went to Kafka: a rerun republishes nothing that has it.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Sequence

import polars as pl

from coin_platform.events.schemas import Candidate

UTC_MS = pl.Datetime("ms", "UTC")

CANDIDATE_SCHEMA: dict[str, pl.DataType] = {
    "id": pl.String(),
    "strategy": pl.String(),
    "symbol": pl.String(),
    "interval": pl.String(),
    "open_time": UTC_MS,
    "close_time": UTC_MS,
    "signal": pl.String(),
    "side": pl.String(),
    "price": pl.Float64(),
    "features": pl.String(),  # JSON object: the feature values the strategy saw
    "detected_at": UTC_MS,
    "published_at": UTC_MS,  # null when it was never published (backfilled history)
    "version": pl.UInt64(),
}

def candidates_table(db: str) -> str:
    return f"""
CREATE TABLE IF NOT EXISTS {db}.candidates (
    id String,
    strategy LowCardinality(String),
    symbol LowCardinality(String),
    interval LowCardinality(String),
    open_time DateTime64(3, 'UTC'),
    close_time DateTime64(3, 'UTC'),
    signal LowCardinality(String),
    side LowCardinality(String),
    price Float64,
    features String,
    detected_at DateTime64(3, 'UTC'),
    published_at Nullable(DateTime64(3, 'UTC')),
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(open_time)
ORDER BY (symbol, interval, open_time, strategy, signal)
"""


def decisions_table(db: str) -> str:
    return f"""
CREATE TABLE IF NOT EXISTS {db}.decisions (
    id String,
    candidate_id String,
    strategy LowCardinality(String),
    symbol LowCardinality(String),
    interval LowCardinality(String),
    signal LowCardinality(String),
    action LowCardinality(String),
    confidence Float64,
    model_version String,
    price Float64,
    candle_close_time DateTime64(3, 'UTC'),
    inputs String,
    decided_at DateTime64(3, 'UTC'),
    published_at Nullable(DateTime64(3, 'UTC')),
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY id
"""


def _version() -> int:
    return time.time_ns()


def _candidate_rows(candidates: Sequence[Candidate], published: dict[str, dt.datetime | None]) -> pl.DataFrame:
    version = _version()
    return pl.DataFrame(
        {
            "id": [c.id for c in candidates],
            "strategy": [c.strategy for c in candidates],
            "symbol": [c.symbol for c in candidates],
            "interval": [c.interval for c in candidates],
            "open_time": [c.open_time for c in candidates],
            "close_time": [c.close_time for c in candidates],
            "signal": [c.signal for c in candidates],
            "side": [c.side for c in candidates],
            "price": [c.price for c in candidates],
            "features": [json.dumps(c.features, sort_keys=True) for c in candidates],
            "detected_at": [c.detected_at for c in candidates],
            "published_at": [published.get(c.id) for c in candidates],
            "version": [version + i for i in range(len(candidates))],
        },
        schema=CANDIDATE_SCHEMA,
    )


def write_candidates(
    client, candidates: Sequence[Candidate], published: dict[str, dt.datetime | None], *, database: str = "coin"
) -> int:
    """Store (or replace) candidates with their publication times (None = not published)."""
    if not candidates:
        return 0
    client.insert_arrow("candidates", _candidate_rows(candidates, published).to_arrow(), database=database)
    return len(candidates)


def published_candidates(client, ids: Sequence[str], *, database: str = "coin") -> dict[str, dt.datetime]:
    """Of `ids`, those already published, with when."""
    if not ids:
        return {}
    frame = pl.from_arrow(
        client.query_arrow(
            f"SELECT id, published_at FROM {database}.candidates FINAL "
            "WHERE id IN {ids:Array(String)} AND published_at IS NOT NULL",
            parameters={"ids": list(ids)},
        )
    )
    return dict(zip(frame["id"].to_list(), frame["published_at"].to_list(), strict=True)) if frame.height else {}


def read_candidates(
    client, symbol: str, interval: str, start: dt.datetime, end: dt.datetime, *, database: str = "coin"
) -> pl.DataFrame:
    """Stored candidates of a symbol and interval with start ≤ open_time < end, in time order."""
    frame = pl.from_arrow(
        client.query_arrow(
            f"SELECT {', '.join(CANDIDATE_SCHEMA)} FROM {database}.candidates FINAL "
            "WHERE symbol = {symbol:String} AND interval = {interval:String} "
            "AND open_time >= {start:DateTime64(3, 'UTC')} AND open_time < {end:DateTime64(3, 'UTC')} "
            "ORDER BY open_time, strategy, signal",
            parameters={
                "symbol": symbol,
                "interval": interval,
                "start": start.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
                "end": end.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
            },
        )
    )
    return frame.cast(CANDIDATE_SCHEMA) if frame.height else pl.DataFrame(schema=CANDIDATE_SCHEMA)
