"""Strategy signals on a features frame, as the Candidate events live detection publishes.

The one place a candidate is made from a signal: candidate detection (over stored features) and
the decision-path backtest (over features computed from history) both call `candidates_from_features`,
so a backtest's candidate has the id, price and features the live one had.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Collection, Mapping, Sequence

import polars as pl

from coin_platform.core.intervals import interval_ms
from coin_platform.events.schemas import Candidate
from coin_platform.features import FEATURE_COLUMNS
from coin_platform.strategies import Strategy, signal_rows

# Feature values a candidate carries, so a consumer sees what the strategy saw.
CARRIED_FEATURES = tuple(c for c in FEATURE_COLUMNS if c not in ("open_time", "close"))


def candidates_from_features(
    strategies: Sequence[Strategy],
    features: pl.DataFrame,
    *,
    symbol: str,
    interval: str,
    detected_at: dt.datetime,
    days: Collection[dt.date] | None = None,
) -> list[Candidate]:
    """Every signal of `strategies` on one symbol's features frame (on `days` only, if given), oldest first.

    Within a candle, candidates come in (strategy, signal) order, the order detection publishes them in.
    """
    rows = signal_candidate_rows(strategies, features, days=days)
    return [
        candidate_from_row(row, symbol=symbol, interval=interval, detected_at=detected_at)
        for row in rows.iter_rows(named=True)
    ]


def signal_candidate_rows(
    strategies: Sequence[Strategy], features: pl.DataFrame, *, days: Collection[dt.date] | None = None
) -> pl.DataFrame:
    """One row per candidate of one symbol's features frame: open_time, strategy, signal, close and the
    carried features, sorted as candidates are published. A frame is far smaller than its Candidates."""
    carried = [column for column in CARRIED_FEATURES if column in features.columns]
    empty = pl.DataFrame(
        schema={
            "open_time": features.schema.get("open_time", pl.Datetime("ms", "UTC")),
            "strategy": pl.String,
            "signal": pl.String,
            "close": pl.Float64,
            **{c: features.schema[c] for c in carried},
        }
    )
    if not strategies or features.is_empty():
        return empty
    fired = signal_rows(strategies, features)
    if days is not None:
        fired = fired.filter(pl.col("open_time").dt.date().is_in(list(days)))
    if fired.is_empty():
        return empty
    rows = fired.select("open_time", "strategy", "signal").join(
        features.select("open_time", "close", *carried), on="open_time", how="left"
    )
    return rows.sort("open_time", "strategy", "signal")


def candidate_from_row(row: Mapping[str, object], *, symbol: str, interval: str, detected_at: dt.datetime) -> Candidate:
    """The Candidate of one `signal_candidate_rows` row."""
    open_time = row["open_time"]
    return Candidate(
        strategy=row["strategy"],
        symbol=symbol,
        interval=interval,
        open_time=open_time,
        close_time=open_time + dt.timedelta(milliseconds=interval_ms(interval) - 1),
        signal=row["signal"],
        price=row["close"],
        features={k: _finite(row.get(k)) for k in CARRIED_FEATURES},
        detected_at=detected_at,
    )


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None
