"""The Strategy interface: indicators per symbol, then four Boolean signal rules.

One strategy object serves live candidate detection and backtests alike (the
role of freqtrade's IStrategy): both hand it a features frame and read the same
`enter_long, exit_long, enter_short, exit_short` columns, so a backtest trades
exactly what live detection would have flagged.
"""

from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import polars as pl

from coin_platform.core.signals import SIGNALS
from coin_platform.features.schema import FEATURE_COLUMNS
from coin_platform.settings import ConfigError

# Prefix of the indicator columns a strategy adds while it evaluates and drops again.
_WORK_PREFIX = "__strategy_"


class SignalRules(NamedTuple):
    """The four rules of a strategy; a null (warm-up) result counts as False."""

    enter_long: pl.Expr
    exit_long: pl.Expr
    enter_short: pl.Expr
    exit_short: pl.Expr


def crosses_above(series: pl.Expr, level: pl.Expr | float) -> pl.Expr:
    """True on the row where `series` reaches `level` from below: previous < previous level, now >= level."""
    previous_level = level.shift(1) if isinstance(level, pl.Expr) else level
    return (series.shift(1) < previous_level) & (series >= level)


def crosses_below(series: pl.Expr, level: pl.Expr | float) -> pl.Expr:
    """True on the row where `series` reaches `level` from above: previous > previous level, now <= level."""
    previous_level = level.shift(1) if isinstance(level, pl.Expr) else level
    return (series.shift(1) > previous_level) & (series <= level)


def feature_or(columns: Collection[str], feature: str, computed: pl.Expr) -> pl.Expr:
    """The stored feature column when the frame has it, else `computed`.

    Only FEATURE_SCHEMA columns are trusted to hold what their name says (`rsi_14`
    is TA-Lib RSI 14 of close), so reusing one gives the values `computed` would.
    """
    return pl.col(feature) if feature in FEATURE_COLUMNS and feature in columns else computed


def is_stored(columns: Collection[str], *features: str) -> bool:
    """Whether every one of `features` is a FEATURE_SCHEMA column the frame has (see `feature_or`)."""
    return all(feature in FEATURE_COLUMNS and feature in columns for feature in features)


@dataclass(frozen=True, kw_only=True)
class Strategy(ABC):
    """A named, parameterised set of signal rules over a features frame.

    Subclasses set `kind`, declare their parameters as dataclass fields with
    defaults, validate them in `check_params`, and implement `indicators` and
    `rules`.
    """

    kind: ClassVar[str]

    name: str
    # Intervals whose candles this strategy evaluates; empty = every interval.
    intervals: tuple[str, ...] = ()
    # False: long only (enter_short / exit_short never fire), as freqtrade's `can_short`.
    can_short: bool = True

    @classmethod
    def param_names(cls) -> tuple[str, ...]:
        """The subclass's own fields: what `params:` in config.yaml may set."""
        return tuple(f.name for f in dataclasses.fields(cls) if f.name not in ("name", "intervals"))

    def __post_init__(self) -> None:
        if not isinstance(self.can_short, bool):
            raise self._invalid("can_short", f"must be true or false, got {self.can_short!r}")
        self.check_params()

    @abstractmethod
    def check_params(self) -> None:
        """Raise ConfigError naming the parameter whose value the kind cannot use."""

    @abstractmethod
    def indicators(self, columns: Collection[str]) -> dict[str, pl.Expr]:
        """The series the rules compare, by key; each is evaluated per symbol, once.

        `columns` are the frame's: return a stored feature column when it holds the
        needed indicator (see `feature_or`), else an expression from coin_platform.indicators.
        """

    def rows_before(self, columns: Collection[str]) -> int | None:
        """How many rows before a row its signals read, when evaluated over a frame with `columns`;
        None when an indicator needs the whole candle history (a recursive one that is not a column).

        Candidate detection evaluates a strategy with a number over the stored feature rows
        (plus that many before), and one with None over features computed from the candles.
        The default, None, is always correct.
        """
        return None

    @abstractmethod
    def rules(self, line: Mapping[str, pl.Expr]) -> SignalRules:
        """The four rules over `line[key]` (the indicators) and the frame's columns.

        Rules may look back with `.shift(n)` (evaluated per symbol) but never ahead.
        """

    def signals(self, frame: pl.DataFrame) -> pl.DataFrame:
        """`frame` (same rows, same order) plus Boolean enter_long, exit_long, enter_short, exit_short.

        `frame` is a features frame, time-sorted within each symbol; with a `symbol`
        column every indicator and look-back stays within its symbol.
        """

        def per_symbol(expr: pl.Expr) -> pl.Expr:
            return expr.over("symbol") if "symbol" in frame.columns else expr

        work = {f"{_WORK_PREFIX}{key}": expr for key, expr in self.indicators(frame.columns).items()}
        rules = self.rules({name.removeprefix(_WORK_PREFIX): pl.col(name) for name in work})
        if not self.can_short:
            rules = rules._replace(enter_short=pl.lit(False), exit_short=pl.lit(False))
        return (
            frame.with_columns(**{name: per_symbol(expr) for name, expr in work.items()})
            .with_columns(**{signal: per_symbol(rule).fill_null(False) for signal, rule in rules._asdict().items()})
            .drop(list(work))
        )

    def _invalid(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"strategies.{self.name}.params.{key}: {problem}")

    def _check_period(self, key: str, minimum: int = 2) -> None:
        value = getattr(self, key)
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise self._invalid(key, f"must be an integer >= {minimum}, got {value!r}")

    def _check_number(self, key: str, *, above: float, below: float = math.inf) -> None:
        """`above < value < below`, a finite int or float (a bool is not a number here)."""
        value = getattr(self, key)
        if not isinstance(value, int | float) or isinstance(value, bool) or not above < value < below:
            bounds = f"> {above}" if below == math.inf else f"between {above} and {below} (exclusive)"
            raise self._invalid(key, f"must be a number {bounds}, got {value!r}")

    def _check_less(self, lower: str, upper: str) -> None:
        if not getattr(self, lower) < getattr(self, upper):
            raise self._invalid(
                lower, f"must be less than {upper} ({getattr(self, upper)!r}), got {getattr(self, lower)!r}"
            )


def signal_rows(strategies: Sequence[Strategy], frame: pl.DataFrame) -> pl.DataFrame:
    """Every signal that fired, one row per (candle, strategy, signal).

    Columns: `symbol` (when `frame` has it), `open_time`, `strategy` (its name) and
    `signal` (one of SIGNALS), sorted by those columns. Candidate detection turns
    each row into a candidate.
    """
    keys = ["symbol", "open_time"] if "symbol" in frame.columns else ["open_time"]
    fired = [
        strategy.signals(frame)
        .select(*keys, *SIGNALS)
        .with_columns(strategy=pl.lit(strategy.name, pl.String))
        .unpivot(on=list(SIGNALS), index=[*keys, "strategy"], variable_name="signal", value_name="fired")
        .filter("fired")
        .drop("fired")
        for strategy in strategies
    ]
    if not fired:
        return pl.DataFrame(schema={**frame.select(keys).schema, "strategy": pl.String, "signal": pl.String})
    return pl.concat(fired).sort(*keys, "strategy", "signal")
