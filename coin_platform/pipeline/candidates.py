"""Trade candidates: strategy signals on closed candles, ready for Kafka.

A run reads what `features_{interval}` stored: the feature objects of its days plus
the rows before them that the strategies' rules look back at (`stored_rows_before`, within
`feature_days_before` days; one row for a crossing, `volume_window` for the volume zone
breakout; read from the newest hour back), and computes
only the series that are not stored. A strategy whose indicator is recursive and not
stored (an EMA of other periods, say) needs the candles' whole history instead: then
the run evaluates every strategy over features computed from the same history a
feature build reads (`LOOKBACK_CANDLES` before the first day), and the asset declares
that OHLCV look-back too (`needs_candles`). Either way a candidate found by a live
tick, a rerun or a backfill is the same candidate with the same id.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import polars as pl

from coin_platform.core.intervals import DAY_MS, interval_ms
from coin_platform.events.candidates import candidates_from_features
from coin_platform.events.schemas import Candidate
from coin_platform.features import FEATURE_COLUMNS, FEATURE_SCHEMA, LOOKBACK_CANDLES, compute_features
from coin_platform.pipeline.features import lookback_start, read_lookback
from coin_platform.storage.features import read_feature_days
from coin_platform.storage.layout import features_day_keys
from coin_platform.storage.ohlcv import HOUR_MS, read_hours
from coin_platform.strategies import Strategy

if TYPE_CHECKING:
    from coin_platform.storage.object_store import ObjectStore


def stored_rows_before(strategies: Sequence[Strategy]) -> int | None:
    """Feature rows before a day that `strategies` read when evaluated over the stored features;
    None when one of them needs the candles' whole history (see the module docstring)."""
    needs = [strategy.rows_before(FEATURE_COLUMNS) for strategy in strategies]
    return None if None in needs else max(needs, default=0)  # type: ignore[type-var]


def needs_candles(strategies: Sequence[Strategy]) -> bool:
    """Whether detection reads the OHLCV look-back rather than the stored features alone."""
    return stored_rows_before(strategies) is None


def feature_days_before(strategies: Sequence[Strategy], interval: str) -> int:
    """Whole UTC days before a day whose stored features the strategies read (0 with no look-back)."""
    rows = stored_rows_before(strategies) or 0
    return -(-rows // (DAY_MS // interval_ms(interval)))


def _features(
    store: ObjectStore,
    strategies: Sequence[Strategy],
    interval: str,
    symbol: str,
    days: list[dt.date],
    history_start: dt.date,
    lookback_candles: int,
) -> pl.DataFrame:
    """The feature rows the strategies are evaluated over: stored ones when that suffices, else computed."""
    if needs_candles(strategies):
        start = lookback_start(days[0], interval, history_start, lookback_candles)
        lookback = read_lookback(store, interval, symbol, start, days[-1])
        return pl.DataFrame() if lookback.is_empty() else compute_features(lookback, interval).drop("symbol")
    span = [days[0] + dt.timedelta(days=n) for n in range((days[-1] - days[0]).days + 1)]
    before = _stored_rows_before(store, strategies, interval, symbol, days[0], history_start)
    return pl.concat([before, read_feature_days(store, interval, symbol, span)])


def _stored_rows_before(
    store: ObjectStore, strategies: Sequence[Strategy], interval: str, symbol: str, day: dt.date, history_start: dt.date
) -> pl.DataFrame:
    """The last `stored_rows_before` feature rows of the `feature_days_before` days before `day` (fewer if those
    days hold fewer): read hour by hour from the newest back, so a crossing's one row costs one GET, not a day's."""
    wanted = stored_rows_before(strategies) or 0
    first = max(day - dt.timedelta(days=feature_days_before(strategies, interval)), history_start)
    hours = [k for n in range((day - first).days) for k in features_day_keys(interval, symbol, first + dt.timedelta(n))]
    per_read = max(1, -(-wanted * interval_ms(interval) // HOUR_MS))
    frames: list[pl.DataFrame] = []
    while hours and sum(f.height for f in frames) < wanted:
        hours, newest = hours[:-per_read], hours[-per_read:]
        frames = read_hours(store, newest, FEATURE_SCHEMA) + frames
    rows = pl.concat(frames) if frames else pl.DataFrame(schema=FEATURE_SCHEMA)
    return rows.tail(wanted)


def detect_candidates(
    store: ObjectStore,
    strategies: Sequence[Strategy],
    interval: str,
    symbol: str,
    days: Sequence[dt.date],
    history_start: dt.date,
    *,
    detected_at: dt.datetime,
    lookback_candles: int = LOOKBACK_CANDLES,
) -> list[Candidate]:
    """Every signal of `strategies` on the symbol's candles of `days`, oldest first."""
    if not strategies or not days:
        return []
    days = sorted(set(days))
    features = _features(store, strategies, interval, symbol, days, history_start, lookback_candles)
    return candidates_from_features(
        strategies, features, symbol=symbol, interval=interval, detected_at=detected_at, days=days
    )


@dataclass(frozen=True)
class PublishPlan:
    """Which candidates of a run go to Kafka now, and why the others do not."""

    publish: tuple[Candidate, ...]
    already_published: tuple[Candidate, ...]
    too_old: tuple[Candidate, ...]


def plan_publication(
    candidates: Sequence[Candidate], published: dict[str, dt.datetime], now: dt.datetime, max_age: dt.timedelta
) -> PublishPlan:
    """Publish what is new and fresh: a rerun republishes nothing, a backfill of old days trades nothing."""
    publish, already, old = [], [], []
    for candidate in candidates:
        if candidate.id in published:
            already.append(candidate)
        elif now - candidate.close_time > max_age:
            old.append(candidate)
        else:
            publish.append(candidate)
    return PublishPlan(tuple(publish), tuple(already), tuple(old))
