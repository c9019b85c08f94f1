"""Kline schemas, parsing of REST rows, cleaning, gap detection and resampling.

A raw kline keeps all 12 REST fields, typed. A cleaned OHLCV frame has one
schema for every interval, so everything downstream reads one shape.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import polars as pl

from coin_platform.market.intervals import interval_ms, normalize_interval

UTC_MS = pl.Datetime("ms", "UTC")

RAW_KLINE_SCHEMA: dict[str, pl.DataType] = {
    "open_time": UTC_MS,
    "open": pl.Float64(),
    "high": pl.Float64(),
    "low": pl.Float64(),
    "close": pl.Float64(),
    "volume": pl.Float64(),
    "close_time": UTC_MS,
    "quote_volume": pl.Float64(),
    "trades": pl.Int64(),
    "taker_buy_volume": pl.Float64(),
    "taker_buy_quote_volume": pl.Float64(),
    "ignore": pl.String(),
}
RAW_KLINE_COLUMNS = tuple(RAW_KLINE_SCHEMA)

OHLCV_SCHEMA: dict[str, pl.DataType] = {
    "open_time": UTC_MS,
    "open": pl.Float64(),
    "high": pl.Float64(),
    "low": pl.Float64(),
    "close": pl.Float64(),
    "volume": pl.Float64(),
    "quote_volume": pl.Float64(),
    "trades": pl.Int64(),
    "taker_buy_volume": pl.Float64(),
    "taker_buy_quote_volume": pl.Float64(),
}
OHLCV_COLUMNS = tuple(OHLCV_SCHEMA)

_INT_FIELDS = {"open_time", "close_time", "trades"}


def kline_request_weight(limit: int) -> int:
    """GET /fapi/v1/klines weight by `limit`: [1,100)→1, [100,500)→2, [500,1000]→5, >1000→10."""
    if limit < 100:
        return 1
    if limit < 500:
        return 2
    if limit <= 1000:
        return 5
    return 10


class SchemaMismatchError(ValueError):
    """A stored object does not have the schema this code writes; names the columns."""


def require_schema(frame: pl.DataFrame, schema: dict[str, pl.DataType], what: str) -> pl.DataFrame:
    """`frame` in `schema`'s column order, or SchemaMismatchError naming what differs."""
    missing = [name for name in schema if name not in frame.columns]
    if missing:
        raise SchemaMismatchError(f"{what} lacks columns {missing}")
    wrong = [n for n, t in schema.items() if frame.schema[n] != t]
    if wrong:
        raise SchemaMismatchError(f"{what} has unexpected types for {wrong}")
    return frame.select(list(schema))


class MalformedKlinesError(ValueError):
    """A kline payload that does not have the REST shape; names the first bad row."""


def empty_raw_klines() -> pl.DataFrame:
    return pl.DataFrame(schema=RAW_KLINE_SCHEMA)


def parse_kline_rows(rows: object) -> pl.DataFrame:
    """REST kline rows (12-element arrays, prices as strings) -> typed raw frame.

    Raises MalformedKlinesError naming the first row that is not a kline, so a
    corrupt response is never half-stored.
    """
    if not isinstance(rows, list):
        raise MalformedKlinesError(f"expected a JSON array of klines, got {type(rows).__name__}")
    for index, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != len(RAW_KLINE_COLUMNS):
            raise MalformedKlinesError(
                f"row {index} is not a 12-field kline: {str(row)[:120]}"
            )
    if not rows:
        return empty_raw_klines()
    columns = list(zip(*rows, strict=True))
    data: dict[str, pl.Series] = {}
    for name, values in zip(RAW_KLINE_COLUMNS, columns, strict=True):
        try:
            if name in _INT_FIELDS:
                series = pl.Series(name, [int(v) for v in values], dtype=pl.Int64)
                data[name] = series.cast(UTC_MS) if name != "trades" else series
            elif name == "ignore":
                data[name] = pl.Series(name, [str(v) for v in values], dtype=pl.String)
            else:
                data[name] = pl.Series(name, [float(v) for v in values], dtype=pl.Float64)
        except (TypeError, ValueError) as exc:
            bad = next(i for i, v in enumerate(values) if not _parses(v, name))
            raise MalformedKlinesError(
                f"row {bad} field {name!r} is not a number: {values[bad]!r}"
            ) from exc
    return pl.DataFrame(data)


def _parses(value: object, name: str) -> bool:
    try:
        int(value) if name in _INT_FIELDS else float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return True


@dataclass(frozen=True)
class CleanedKlines:
    frame: pl.DataFrame
    duplicates_dropped: int
    unclosed_dropped: int
    misaligned_dropped: int
    zero_volume_dropped: int


def clean_klines(
    raw: pl.DataFrame,
    interval: str,
    *,
    now: dt.datetime,
    drop_zero_volume: bool = False,
) -> CleanedKlines:
    """Raw klines -> OHLCV: closed candles only, aligned, sorted, one row per open time."""
    step = interval_ms(interval)
    now_ms = int(now.timestamp() * 1000)
    epoch_ms = pl.col("open_time").dt.epoch("ms")
    closed = raw.filter(pl.col("close_time").dt.epoch("ms") < now_ms)
    aligned = closed.filter(epoch_ms % step == 0)
    deduplicated = aligned.sort("open_time", maintain_order=True).unique(
        subset="open_time", keep="last", maintain_order=True
    )
    kept = deduplicated.filter(pl.col("volume") > 0) if drop_zero_volume else deduplicated
    frame = kept.select(pl.col(name).cast(dtype) for name, dtype in OHLCV_SCHEMA.items())
    return CleanedKlines(
        frame=frame,
        unclosed_dropped=raw.height - closed.height,
        misaligned_dropped=closed.height - aligned.height,
        duplicates_dropped=aligned.height - deduplicated.height,
        zero_volume_dropped=deduplicated.height - kept.height,
    )


@dataclass(frozen=True)
class Gap:
    """A run of missing candles: [first, last] open times, both inclusive."""

    first: dt.datetime
    last: dt.datetime
    candles: int

    def as_dict(self) -> dict[str, object]:
        return {"first": self.first.isoformat(), "last": self.last.isoformat(), "candles": self.candles}


@dataclass(frozen=True)
class GapReport:
    expected: int
    missing: int
    gaps: list[Gap] = field(default_factory=list)


def find_gaps(
    open_times: pl.Series, interval: str, start: dt.datetime, end: dt.datetime
) -> GapReport:
    """Missing candles among the open times expected in [start, end)."""
    step = dt.timedelta(milliseconds=interval_ms(interval))
    if end <= start:
        return GapReport(expected=0, missing=0)
    expected = pl.datetime_range(start, end - step, step, time_unit="ms", time_zone="UTC", eager=True)
    present = open_times.cast(UTC_MS)
    missing = expected.filter(~expected.is_in(present.implode()))
    gaps: list[Gap] = []
    if missing.len():
        runs = (
            pl.DataFrame({"t": missing})
            .with_columns(run=(pl.col("t").diff() != step).fill_null(True).cum_sum())
            .group_by("run", maintain_order=True)
            .agg(first=pl.col("t").first(), last=pl.col("t").last(), candles=pl.len())
        )
        gaps = [
            Gap(first=row["first"], last=row["last"], candles=row["candles"])
            for row in runs.iter_rows(named=True)
        ]
    return GapReport(expected=expected.len(), missing=missing.len(), gaps=gaps)


_AGGREGATIONS = {
    "open": pl.Expr.first,
    "high": pl.Expr.max,
    "low": pl.Expr.min,
    "close": pl.Expr.last,
    "volume": pl.Expr.sum,
    "quote_volume": pl.Expr.sum,
    "trades": pl.Expr.sum,
    "taker_buy_volume": pl.Expr.sum,
    "taker_buy_quote_volume": pl.Expr.sum,
}


def resample_ohlcv(frame: pl.DataFrame, to_interval: str, time_column: str = "open_time") -> pl.DataFrame:
    """Aggregate candles to a coarser interval (UTC-aligned buckets, labelled by open time).

    Aggregates whichever OHLCV columns the frame has; `candles` counts the inputs per bucket.
    """
    every = normalize_interval(to_interval)
    return (
        frame.sort(time_column)
        .group_by_dynamic(time_column, every=every, closed="left", label="left")
        .agg(
            *(aggregate(pl.col(name)) for name, aggregate in _AGGREGATIONS.items() if name in frame.columns),
            pl.len().alias("candles"),
        )
    )
