"""Data-quality rules for cleaned OHLCV frames, as plain functions.

Each rule returns a Finding: whether it passed, a one-line description and
details for metadata. The Dagster asset checks are thin wrappers over these.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import polars as pl

from coin_platform.market.klines import OHLCV_SCHEMA, aggregate_mismatch, find_gaps, ohlc_problems, resample_ohlcv

MAX_LISTED = 20


@dataclass(frozen=True)
class Finding:
    passed: bool
    description: str
    details: dict[str, object] = field(default_factory=dict)


def _times(frame: pl.DataFrame) -> list[str]:
    return [t.isoformat() for t in frame["open_time"].head(MAX_LISTED).to_list()]


def check_schema(frame: pl.DataFrame) -> Finding:
    missing = [c for c in OHLCV_SCHEMA if c not in frame.columns]
    extra = [c for c in frame.columns if c not in OHLCV_SCHEMA]
    wrong = {
        c: str(frame.schema[c])
        for c, dtype in OHLCV_SCHEMA.items()
        if c in frame.columns and frame.schema[c] != dtype
    }
    passed = not (missing or extra or wrong)
    description = (
        "columns and types match the OHLCV schema"
        if passed
        else f"schema differs: missing {missing}, unexpected {extra}, wrong types {wrong}"
    )
    return Finding(passed, description, {"missing": missing, "unexpected": extra, "wrong_types": wrong})


def check_open_time_order(frame: pl.DataFrame) -> Finding:
    """open_time is unique and strictly increasing in storage order."""
    times = frame["open_time"]
    duplicates = frame.filter(times.is_duplicated())
    not_increasing = frame.filter(times.diff() <= dt.timedelta(0))
    passed = duplicates.is_empty() and not_increasing.is_empty()
    description = (
        f"{frame.height} open times unique and increasing"
        if passed
        else f"{duplicates.height} duplicated and {not_increasing.height} non-increasing open times"
    )
    return Finding(
        passed,
        description,
        {"duplicated": _times(duplicates), "not_increasing": _times(not_increasing)},
    )


def check_ohlc_sanity(frame: pl.DataFrame) -> Finding:
    """Every candle passes `ohlc_problems`: finite, prices > 0, low ≤ open, close ≤ high, volumes ≥ 0."""
    bad = frame.with_columns(problem=ohlc_problems()).filter(pl.col("problem") != "")
    passed = bad.is_empty()
    description = (
        f"{frame.height} candles are finite, positive, with low ≤ open, close ≤ high and volume ≥ 0"
        if passed
        else f"{bad.height} candles break OHLC sanity"
    )
    return Finding(
        passed,
        description,
        {"bad_candles": _times(bad), "problems": bad["problem"].head(MAX_LISTED).to_list()},
    )


def check_gaps(frame: pl.DataFrame, interval: str, start: dt.datetime, end: dt.datetime) -> Finding:
    """Every candle expected in [start, end) is present."""
    report = find_gaps(frame["open_time"], interval, start, end)
    passed = report.missing == 0
    description = (
        f"all {report.expected} expected candles present"
        if passed
        else f"{report.missing} of {report.expected} candles missing in {len(report.gaps)} gaps"
    )
    return Finding(
        passed,
        description,
        {"missing": report.missing, "gaps": [g.as_dict() for g in report.gaps[:MAX_LISTED]]},
    )


def check_matches_aggregate(
    coarse: pl.DataFrame, fine: pl.DataFrame, coarse_interval: str, fine_per_coarse: int
) -> Finding:
    """Each stored coarse candle equals the aggregate of its fine candles, where all are stored.

    Prices must match exactly; summed volumes to 1e-9 relative (decimal sums
    done in float).
    """
    aggregated = resample_ohlcv(fine, coarse_interval).filter(pl.col("candles") == fine_per_coarse)
    joined = coarse.join(aggregated, on="open_time", suffix="_agg", how="inner")
    price_cols = ["open", "high", "low", "close"]
    sum_cols = ["volume", "quote_volume", "taker_buy_volume", "taker_buy_quote_volume"]
    mismatch = aggregate_mismatch(exact=(*price_cols, "trades"), summed=sum_cols, suffix="_agg")
    bad = joined.filter(mismatch)
    passed = bad.is_empty()
    description = (
        f"nothing to compare: no {coarse_interval} candle has all its finer candles stored"
        if joined.is_empty()
        else f"{joined.height} candles equal the aggregate of their {fine_per_coarse} finer candles"
        if passed
        else f"{bad.height} of {joined.height} candles differ from their finer candles' aggregate"
    )
    return Finding(passed, description, {"compared": joined.height, "differing": _times(bad)})
