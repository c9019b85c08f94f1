"""USD-M perpetual funding rates: the schema, strict parsing of GET /fapi/v1/fundingRate, and the rules
the funding asset checks.

A funding rate is charged at each funding time: longs pay shorts `rate × position notional` (shorts pay
when it is negative). Binance funds every 8 hours at 00:00, 08:00 and 16:00 UTC by default; some symbols
are moved to 4 h or 1 h (GET /fapi/v1/fundingInfo lists those, with their cap and floor). Binance stamps
a funding time a few milliseconds after the hour (up to 19 ms in the real XRPUSDT file in shared/data),
and the stored time is the exchange's, unrounded.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import polars as pl

from coin_platform.core.time import UTC_MS
from coin_platform.market.quality import MAX_LISTED, Finding

FUNDING_SCHEMA: dict[str, pl.DataType] = {
    "symbol": pl.String(),
    "funding_time": UTC_MS,
    "funding_rate": pl.Float64(),
    "mark_price": pl.Float64(),  # null where Binance sends "" or no markPrice (older records)
}
FUNDING_COLUMNS = tuple(FUNDING_SCHEMA)

# The largest cap or floor GET /fapi/v1/fundingInfo publishes for an adjusted symbol is ±3 %
# (others ±2 % and ±2.5 %); symbols it does not list have tighter caps. A rate beyond this is not Binance's.
FUNDING_RATE_CAP = 0.03
DEFAULT_FUNDING_INTERVAL_HOURS = 8
# The intervals Binance funds at, each a divisor of 24 h, so each grid starts at 00:00 UTC.
FUNDING_INTERVALS_HOURS = (8, 4, 2, 1)
# How far from the whole hour a funding time may be stamped.
GRID_TOLERANCE_MS = 1_000
HOUR_MS = 3_600_000
_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?")


class MalformedFundingError(ValueError):
    """A fundingRate body that does not have the REST shape; names the item and the field."""


def empty_funding() -> pl.DataFrame:
    return pl.DataFrame(schema=FUNDING_SCHEMA)


def parse_funding_rates(items: object) -> pl.DataFrame:
    """fundingRate items `{symbol, fundingTime, fundingRate, markPrice}` -> a frame in FUNDING_SCHEMA, in order.

    `fundingRate` must be a decimal string of a finite number, `fundingTime` an integer of ms,
    `markPrice` a decimal string of a positive price, "" or absent (null). Raises
    MalformedFundingError naming the first bad item and field, so a corrupt answer is never half-stored.
    """
    if not isinstance(items, list):
        raise MalformedFundingError(f"expected a JSON array of funding rates, got {type(items).__name__}")
    rows = [_parse_item(index, item) for index, item in enumerate(items)]
    if not rows:
        return empty_funding()
    symbols, times, rates, marks = zip(*rows, strict=True)
    return pl.DataFrame(
        {
            "symbol": pl.Series(symbols, dtype=pl.String),
            "funding_time": pl.Series(times, dtype=pl.Int64).cast(UTC_MS),
            "funding_rate": pl.Series(rates, dtype=pl.Float64),
            "mark_price": pl.Series(marks, dtype=pl.Float64),
        }
    )


def _parse_item(index: int, item: Any) -> tuple[str, int, float, float | None]:
    def bad(field: str, problem: str) -> MalformedFundingError:
        shown = repr(item.get(field))[:60] if isinstance(item, dict) and field in item else "missing"
        return MalformedFundingError(f"funding item {index} field {field!r} {problem}: {shown}")

    if not isinstance(item, dict):
        raise MalformedFundingError(f"funding item {index} is not an object: {str(item)[:120]}")
    symbol = item.get("symbol")
    if not isinstance(symbol, str) or not symbol:
        raise bad("symbol", "is not a symbol")
    time_ms = item.get("fundingTime")
    if isinstance(time_ms, bool) or not isinstance(time_ms, int) or not 0 <= time_ms < 2**63:
        raise bad("fundingTime", "is not a time in ms")
    rate = _decimal(item.get("fundingRate"))
    if rate is None:
        raise bad("fundingRate", "is not a decimal string of a finite number")
    if item.get("markPrice", "") == "":
        return symbol, time_ms, rate, None
    mark = _decimal(item["markPrice"])
    if mark is None or mark <= 0:
        raise bad("markPrice", 'is not a decimal string of a positive price, nor ""')
    return symbol, time_ms, rate, mark


def _decimal(value: object) -> float | None:
    """A plain decimal string (`-0.00010000`) as a float, or None for anything else (numbers, NaN, exponents)."""
    if not isinstance(value, str) or not _DECIMAL.fullmatch(value):
        return None
    return float(value)


# -- the rules the funding_rates asset checks -----------------------------------------------------------


def _hour_grid(times: pl.Series) -> tuple[pl.Series, pl.Series]:
    """Each time's nearest whole hour since the epoch, and whether it is off that hour by more than the tolerance."""
    epoch_ms = times.dt.epoch("ms")
    nearest_hour = (epoch_ms + HOUR_MS // 2) // HOUR_MS
    return nearest_hour, (epoch_ms - nearest_hour * HOUR_MS).abs() > GRID_TOLERANCE_MS


def funding_grid_hours(frame: pl.DataFrame) -> int | None:
    """The coarsest funding interval (8, 4, 2 or 1 h from 00:00 UTC) every funding time lies on, within
    GRID_TOLERANCE_MS; None when a time is off the whole hour, or there are no times."""
    nearest_hour, off_grid = _hour_grid(frame["funding_time"])
    if frame.is_empty() or off_grid.any():
        return None
    return next(hours for hours in FUNDING_INTERVALS_HOURS if (nearest_hour % hours == 0).all())


def _listed(times: pl.Series) -> list[str]:
    return [t.isoformat() for t in times.head(MAX_LISTED).to_list()]


def check_funding_times(frame: pl.DataFrame) -> Finding:
    """Funding times are unique, increasing and on an hourly grid from 00:00 UTC; the grid is reported.

    An interval other than Binance's default 8 h passes (some symbols fund every 4 h or 1 h) and is named;
    funding times missing from the grid between the first and the last are counted, not failed
    (the real files have such gaps).
    """
    times = frame["funding_time"]
    duplicated = times.filter(times.is_duplicated())
    not_increasing = times.filter(times.diff() <= dt.timedelta(0))
    nearest_hour, off = _hour_grid(times)
    off_grid = times.filter(off)
    hours = funding_grid_hours(frame)
    missing = 0
    if hours is not None:
        first, last = int(nearest_hour.min()), int(nearest_hour.max())  # type: ignore[arg-type]
        missing = (last - first) // hours + 1 - nearest_hour.n_unique()
    passed = duplicated.is_empty() and not_increasing.is_empty() and off_grid.is_empty()
    if frame.is_empty():
        description = "no funding times stored"
    elif not passed:
        description = (
            f"{duplicated.len()} duplicated, {not_increasing.len()} non-increasing and {off_grid.len()} "
            "off-the-hour funding times"
        )
    else:
        default = hours == DEFAULT_FUNDING_INTERVAL_HOURS
        description = (
            f"{frame.height} funding times unique, increasing, on the {hours} h grid"
            + ("" if default else " (not Binance's default 8 h)")
            + (f"; {missing} missing between the first and the last" if missing else "")
        )
    return Finding(
        passed,
        description,
        {
            "funding_interval_hours": hours,
            "missing_between": missing,
            "duplicated": _listed(duplicated),
            "not_increasing": _listed(not_increasing),
            "off_grid": _listed(off_grid),
        },
    )


def funding_rate_problems() -> pl.Expr:
    """Why a stored funding row cannot be Binance's ("; "-joined), or "": a missing or non-finite rate, one
    beyond ±FUNDING_RATE_CAP, a mark price that is present but not a finite positive price."""
    rate, mark = pl.col("funding_rate"), pl.col("mark_price")
    rules = [
        (~rate.is_finite().fill_null(False), "missing or non-finite funding_rate"),
        # is_finite first: polars orders NaN above every number.
        (rate.is_finite() & (rate.abs() > FUNDING_RATE_CAP), f"|funding_rate| above the {FUNDING_RATE_CAP:.0%} cap"),
        (mark.is_not_null() & ~mark.is_finite(), "non-finite mark_price"),
        (mark <= 0, "non-positive mark_price"),
    ]
    return pl.concat_str(
        [pl.when(rule).then(pl.lit(reason)) for rule, reason in rules], separator="; ", ignore_nulls=True
    )


def check_funding_rates(frame: pl.DataFrame) -> Finding:
    """Every rate is finite and within ±FUNDING_RATE_CAP; every mark price is null or finite and positive."""
    bad = frame.with_columns(problem=funding_rate_problems()).filter(pl.col("problem") != "")
    passed = bad.is_empty()
    description = (
        f"{frame.height} funding rates finite and within ±{FUNDING_RATE_CAP:.0%}"
        if passed
        else f"{bad.height} of {frame.height} funding rows impossible"
    )
    return Finding(
        passed,
        description,
        {"bad_rows": _listed(bad["funding_time"]), "problems": bad["problem"].head(MAX_LISTED).to_list()},
    )
