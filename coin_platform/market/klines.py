"""Kline schemas, parsing of REST rows, cleaning, gap detection and resampling.

A raw kline keeps all 12 REST fields, typed. A cleaned OHLCV frame has one
schema for every interval, so everything downstream reads one shape.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

import polars as pl

from coin_platform.core.intervals import interval_ms, normalize_interval
from coin_platform.core.time import UTC_MS

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

# The cleaned candle: the raw fields without close_time (open_time + interval - 1 ms) and Binance's unused field.
OHLCV_SCHEMA: dict[str, pl.DataType] = {
    name: dtype for name, dtype in RAW_KLINE_SCHEMA.items() if name not in ("close_time", "ignore")
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
        if name == "ignore":
            data[name] = pl.Series(name, [str(v) for v in values], dtype=pl.String)
            continue
        try:
            numbers = [_number(v, name) for v in values]
        except (TypeError, ValueError, OverflowError) as exc:
            bad = next(i for i, v in enumerate(values) if not _parses(v, name))
            raise MalformedKlinesError(
                f"row {bad} field {name!r} is not a number: {values[bad]!r}"
            ) from exc
        if name in _INT_FIELDS:
            series = pl.Series(name, numbers, dtype=pl.Int64)
            data[name] = series.cast(UTC_MS) if name != "trades" else series
        else:
            data[name] = pl.Series(name, numbers, dtype=pl.Float64)
    return pl.DataFrame(data)


def _number(value: object, name: str) -> int | float:
    """One REST field as a Python number; integer fields must fit Int64 (the exchange's ms and counts)."""
    if name not in _INT_FIELDS:
        return float(value)  # type: ignore[arg-type]
    number = int(value)  # type: ignore[call-overload]
    if not -(2**63) <= number < 2**63:
        raise OverflowError(f"{number} does not fit Int64")
    return number


def _parses(value: object, name: str) -> bool:
    try:
        _number(value, name)
    except (TypeError, ValueError, OverflowError):
        return False
    return True


_PRICES = ("open", "high", "low", "close")
_AMOUNTS = ("volume", "quote_volume", "taker_buy_volume", "taker_buy_quote_volume")


def ohlc_problems() -> pl.Expr:
    """Why a candle cannot be a real one ("; "-joined reasons), or "" when it can.

    Non-finite or missing values, prices ≤ 0, negative volumes or trades,
    high < low, open or close outside [low, high]. The cleaner quarantines such
    rows and the ohlc_sanity check fails on them: one rule for both.
    """
    finite_prices = pl.all_horizontal(pl.col(_PRICES).is_finite())  # polars orders NaN above +inf
    rules = [
        *((~pl.col(c).is_finite().fill_null(False), f"non-finite {c}") for c in (*_PRICES, *_AMOUNTS)),
        (pl.col("trades").is_null(), "missing trades"),
        *((pl.col(c) <= 0, f"non-positive {c}") for c in _PRICES),
        *((pl.col(c) < 0, f"negative {c}") for c in (*_AMOUNTS, "trades")),
        (finite_prices & (pl.col("high") < pl.col("low")), "high < low"),
        *(
            (finite_prices & ~pl.col(c).is_between("low", "high"), f"{c} outside [low, high]")
            for c in ("open", "close")
        ),
    ]
    return pl.concat_str(
        [pl.when(rule).then(pl.lit(reason)) for rule, reason in rules], separator="; ", ignore_nulls=True
    )


@dataclass(frozen=True)
class CleanedKlines:
    """The cleaned frame and what was left out of it; `quarantined` is (open_time, reason) per row."""

    frame: pl.DataFrame
    quarantined: pl.DataFrame
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
    """Raw klines -> OHLCV: closed candles only, aligned, sorted, one row per open time.

    The exchange's last copy of a candle wins; if that copy breaks `ohlc_problems`
    (NaN, inf, prices ≤ 0, high < low, ...) the candle is quarantined, not
    repaired: the cleaned frame has a gap at its open time, which gap detection
    and the no_gaps check report, and indicators read a missing candle rather
    than a wrong one. The raw layer keeps the row as evidence.
    """
    step = interval_ms(interval)
    now_ms = int(now.timestamp() * 1000)
    epoch_ms = pl.col("open_time").dt.epoch("ms")
    closed = raw.filter(pl.col("close_time").dt.epoch("ms") < now_ms)
    aligned = closed.filter(epoch_ms % step == 0)
    deduplicated = aligned.sort("open_time", maintain_order=True).unique(
        subset="open_time", keep="last", maintain_order=True
    )
    judged = deduplicated.with_columns(_reason=ohlc_problems())
    sound = judged.filter(pl.col("_reason") == "").drop("_reason")
    quarantined = judged.filter(pl.col("_reason") != "").select("open_time", reason="_reason")
    kept = sound.filter(pl.col("volume") > 0) if drop_zero_volume else sound
    frame = kept.select(pl.col(name).cast(dtype) for name, dtype in OHLCV_SCHEMA.items())
    return CleanedKlines(
        frame=frame,
        quarantined=quarantined,
        unclosed_dropped=raw.height - closed.height,
        misaligned_dropped=closed.height - aligned.height,
        duplicates_dropped=aligned.height - deduplicated.height,
        zero_volume_dropped=sound.height - kept.height,
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


# Summed volumes of an aggregate agree to this relative error: decimal sums done in float, in another order.
SUM_TOLERANCE = 1e-9


def aggregate_mismatch(exact: Sequence[str], summed: Sequence[str], *, suffix: str) -> pl.Expr:
    """True where a candle differs from its aggregate (columns `{name}{suffix}`): the `exact`
    columns (prices, trades) at all, the `summed` ones (volumes) by more than SUM_TOLERANCE relative."""
    return pl.any_horizontal(
        [pl.col(c) != pl.col(f"{c}{suffix}") for c in exact]
        + [
            (pl.col(c) - pl.col(f"{c}{suffix}")).abs()
            > SUM_TOLERANCE * pl.max_horizontal(pl.col(c).abs(), pl.lit(1e-12))
            for c in summed
        ]
    )
