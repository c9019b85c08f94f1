"""Guards against the two ways a backtest flatters a strategy: look-ahead and warm-up dependence.

`lookahead_analysis` (freqtrade's lookahead-analysis idea): evaluate the strategy on the
whole range, then again on the data cut off at sample bars. A causal strategy gives every
bar up to the cut the same signals either way, and the backtest the same closed trades; a
strategy that reads a later row (`.shift(-1)`, a centred window, a global normalisation)
changes its signals when the future is cut away.

`recursive_analysis` (freqtrade's recursive-analysis idea): evaluate the strategy from a
start bar preceded by different amounts of history. Recursive indicators (EMA, RSI's
Wilder smoothing) forget their seed geometrically, so after enough warm-up their signals
no longer depend on where the data began; an unbounded dependence (a cumulative sum, an
expanding mean) never forgets, and a too-short warm-up shows as a difference too.

Both evaluate exactly as `run_backtest` does (`strategy_signals`: features computed by
`compute_features` when the strategy needs them) and report the first differing bar.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from coin_platform.backtest.engine import BacktestInputError, simulate, strategy_signals
from coin_platform.core.signals import SIGNALS
from coin_platform.core.time import UTC_MS
from coin_platform.strategies import Strategy


@dataclass(frozen=True)
class Difference:
    """Where two evaluations first disagree: a signal on a bar, or the trades.

    `reference` is the value over the full range (look-ahead) or with all the history before
    the start (recursive); `other` the value when the data ends at the cut, or after the
    shorter warm-up. For `what == "trades"`, both are the first differing trade (or None).
    """

    symbol: str
    open_time: dt.datetime
    what: str
    reference: Any
    other: Any


@dataclass(frozen=True)
class LookaheadReport:
    """The cut bars checked and, for each cut that changed anything, its first difference."""

    strategy: str
    cuts: tuple[dt.datetime, ...]
    biased: tuple[tuple[dt.datetime, Difference], ...]

    @property
    def passed(self) -> bool:
        return not self.biased

    @property
    def first(self) -> Difference | None:
        """The earliest differing bar over all cuts."""
        return min((d for _, d in self.biased), key=lambda d: d.open_time, default=None)

    def __str__(self) -> str:
        if self.passed:
            return f"{self.strategy}: no look-ahead bias at {len(self.cuts)} cuts"
        cut, difference = min(self.biased, key=lambda item: item[1].open_time)
        return (
            f"{self.strategy}: look-ahead bias at {len(self.biased)} of {len(self.cuts)} cuts; first: "
            f"{_describe(difference)} is {difference.reference!r} over the full range but "
            f"{difference.other!r} when the data ends at {cut.isoformat()}"
        )


@dataclass(frozen=True)
class RecursiveReport:
    """Per warm-up that changed anything: its first difference and how many signal rows differ."""

    strategy: str
    start: dt.datetime
    warmups: tuple[int, ...]
    differences: dict[int, Difference]
    differing_rows: dict[int, int]

    @property
    def passed(self) -> bool:
        return not self.differences

    def __str__(self) -> str:
        if self.passed:
            return f"{self.strategy}: signals from {self.start.isoformat()} agree after warm-ups {list(self.warmups)}"
        lines = [f"{self.strategy}: signals from {self.start.isoformat()} depend on the history before it"]
        for warmup, difference in sorted(self.differences.items()):
            lines.append(
                f"  warm-up {warmup} bars: {self.differing_rows[warmup]} rows differ; first: {_describe(difference)} "
                f"is {difference.other!r}, with all history {difference.reference!r}"
            )
        return "\n".join(lines)


def lookahead_analysis(
    candles: pl.DataFrame,
    strategy: Strategy,
    *,
    samples: int = 20,
    interval: str | None = None,
    **backtest: Any,
) -> LookaheadReport:
    """Cut the data at up to `samples` bars where the full-range run signals (evenly spread
    over them; evenly over all bars when nothing fires) and compare; `backtest` goes to `simulate`."""
    if samples < 1:
        raise BacktestInputError(f"samples must be >= 1, got {samples}")
    candles = candles.with_columns(pl.col("open_time").cast(UTC_MS))
    full, _ = strategy_signals(candles, strategy, interval=interval)
    full_trades = simulate(full, **backtest).trades
    candidates = full.filter(pl.any_horizontal(SIGNALS))["open_time"].unique().sort()
    if candidates.is_empty():
        candidates = full["open_time"].unique().sort()
    cuts = candidates.gather(np.unique(np.linspace(0, len(candidates) - 1, samples).round().astype(np.int64)))
    biased = []
    for cut in cuts:
        seen = full.filter(pl.col("open_time") <= cut)
        truncated, _ = strategy_signals(candles.filter(pl.col("open_time") <= cut), strategy, interval=interval)
        difference = _first_signal_difference(seen, truncated)
        if difference is None:
            closed = full_trades.filter((pl.col("exit_time") <= cut) & (pl.col("exit_reason") != "end_of_data"))
            truncated_trades = simulate(truncated, **backtest).trades.filter(pl.col("exit_reason") != "end_of_data")
            difference = _first_trade_difference(closed, truncated_trades)
        if difference is not None:
            biased.append((cut, difference))
    return LookaheadReport(strategy=strategy.name, cuts=tuple(cuts), biased=tuple(biased))


def recursive_analysis(
    candles: pl.DataFrame,
    strategy: Strategy,
    *,
    warmups: Sequence[int] = (300, 600, 1_000),
    start: dt.datetime | None = None,
    interval: str | None = None,
    **backtest: Any,
) -> RecursiveReport:
    """Evaluate from `start` after each warm-up (bars of history before it, per symbol) and with
    all the history there is (the reference); signals from `start` on and the trades of a backtest
    from `start` must not change. `start` defaults to the first time every symbol has max(warmups)
    bars before it, so there the reference is the longest warm-up."""
    warmups = tuple(sorted(set(warmups)))
    if not warmups or warmups[0] < 1:
        raise BacktestInputError(f"warmups must be positive bar counts, got {warmups!r}")
    candles = candles.with_columns(pl.col("open_time").cast(UTC_MS))
    named = candles if "symbol" in candles.columns else candles.with_columns(symbol=pl.lit(""))
    ranked = named.sort("symbol", "open_time").with_columns(_row=pl.int_range(pl.len()).over("symbol"))
    if start is None:
        start = ranked.filter(pl.col("_row") == warmups[-1])["open_time"].max()
        if start is None:
            raise BacktestInputError(f"no symbol has the {warmups[-1]} bars the longest warm-up needs")
    # Per symbol, the row number of its first bar at or after `start` = how many bars precede it.
    first = ranked.filter(pl.col("open_time") >= start).group_by("symbol").agg(_first=pl.col("_row").min())
    if first.is_empty() or first["_first"].min() < warmups[-1]:
        raise BacktestInputError(f"some symbol has fewer than {warmups[-1]} bars before {start}")
    with_first = ranked.join(first, on="symbol", how="inner")

    def from_start(history: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
        frame, _ = strategy_signals(history.drop("_row", "_first"), strategy, interval=interval)
        evaluated = frame.filter(pl.col("open_time") >= start)
        return evaluated, simulate(evaluated, **backtest).trades

    reference, reference_trades = from_start(with_first)
    differences: dict[int, Difference] = {}
    differing_rows: dict[int, int] = {}
    for warmup in warmups:
        evaluated, trades = from_start(with_first.filter(pl.col("_row") >= pl.col("_first") - warmup))
        rows = int(_mismatch(reference, evaluated).sum())
        difference = _first_signal_difference(reference, evaluated) or _first_trade_difference(reference_trades, trades)
        if difference is not None:
            differences[warmup] = difference
            differing_rows[warmup] = rows
    return RecursiveReport(
        strategy=strategy.name, start=start, warmups=warmups, differences=differences, differing_rows=differing_rows
    )


def _mismatch(reference: pl.DataFrame, other: pl.DataFrame) -> np.ndarray:
    """Per row, whether any signal differs (the frames hold the same rows in the same order)."""
    if reference.height != other.height:  # strategy_signals keeps every row it is given
        raise BacktestInputError(f"the evaluations cover {reference.height} and {other.height} bars")
    return np.any([reference[s].to_numpy() != other[s].to_numpy() for s in SIGNALS], axis=0)


def _first_signal_difference(reference: pl.DataFrame, other: pl.DataFrame) -> Difference | None:
    differs = _mismatch(reference, other)
    if not differs.any():
        return None
    row = int(np.flatnonzero(differs)[0])
    signal = next(s for s in SIGNALS if reference[s][row] != other[s][row])
    symbol = str(reference["symbol"][row]) if "symbol" in reference.columns else ""
    return Difference(symbol, reference["open_time"][row], signal, reference[signal][row], other[signal][row])


def _first_trade_difference(reference: pl.DataFrame, other: pl.DataFrame) -> Difference | None:
    """The first trade (in entry order) that one run has and the other lacks or has otherwise."""
    for index in range(max(reference.height, other.height)):
        mine = reference.row(index, named=True) if index < reference.height else None
        theirs = other.row(index, named=True) if index < other.height else None
        if mine != theirs:
            where = mine if mine is not None else theirs
            return Difference(where["symbol"], where["entry_time"], "trades", mine, theirs)  # type: ignore[index]
    return None


def _describe(difference: Difference) -> str:
    symbol = f"{difference.symbol} " if difference.symbol else ""
    return f"{difference.what} at {symbol}{difference.open_time.isoformat()}"
