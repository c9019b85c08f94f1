"""Parameter sweeps and walk-forward optimisation: many parameter sets of one strategy kind, compiled.

`run_sweep(candles, kind, grid)` evaluates every valid combination of `grid` (combinations the
kind refuses, such as fast >= slow, are skipped and counted) on one symbol's candles and returns
one row of metrics per parameter set. One numba kernel (`parallel=True`: a prange over as many
lanes as numba has threads, each with its own reused buffers) runs the engine's own
`_simulate_series` on each set and reduces its equity and trades to metrics at once, so no
per-set Python runs and no per-bar equity is kept.

Signals. For ema_crossover each distinct period's EMA is computed once (the `ema` expression the
strategy uses) and the kernel derives every (fast, slow) pair's crossings itself; any other kind
evaluates each set's `Strategy.signals` (with features computed once when the kind reads them),
`chunk_size` sets at a time, which is exact but costs a polars evaluation per set.

Metrics. The kernel computes coin_platform.backtest.metrics' statistics with its definitions
(daily closes, geometric mean, 365 days, drawdown from the running peak starting at the initial
cash, ...), NaN where compute_metrics gives None; a test holds every key equal to
`run_backtest(...).metrics` for single grid points.

Walk-forward. `WalkForward(in_sample_bars, out_of_sample_bars, step_bars)` rolls windows over the
bars: each in-sample window picks the set with the highest `metric`, which is then evaluated on
the out-of-sample bars that follow. Indicators and signals come from the whole history (they are
causal, so a window's signals only read bars before them); each window starts flat with the
initial cash.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
import polars as pl
from numba import njit, prange

from coin_platform.backtest.engine import (
    PRICE_COLUMNS,
    BacktestInputError,
    EquityFraction,
    FixedNotional,
    _check_parameters,
    _costs,
    _funding_events,
    _ordered,
    _prices,
    _read_only,
    _signal,
    _simulate_series,
    _symbol_blocks,
    _with_features,
)
from coin_platform.backtest.margin import BTCUSDT_BRACKETS, MarginBrackets
from coin_platform.backtest.metrics import METRIC_LABELS
from coin_platform.core.signals import SIGNALS
from coin_platform.indicators import ema
from coin_platform.settings import ConfigError
from coin_platform.strategies import STRATEGY_CLASSES, Strategy

# The metrics a sweep reports: coin_platform.backtest.metrics' keys in its order, less buy & hold (a sweep
# has no benchmark). The kernel's metric indices below follow this order.
SWEEP_METRICS = tuple(key for key in METRIC_LABELS if key != "buy_and_hold_return_pct")
# Metrics a sweep may optimise: higher is better for each (max_drawdown_pct is ≤ 0).
OPTIMISABLE = (
    "total_return_pct",
    "final_equity",
    "cagr_pct",
    "return_ann_pct",
    "sharpe",
    "sortino",
    "calmar",
    "max_drawdown_pct",
    "win_rate_pct",
    "profit_factor",
    "expectancy_pct",
)
COSTS = ("fee", "slippage", "initial_cash", "sizing", "stop_loss", "take_profit", "leverage", "funding", "brackets")
_M = {name: index for index, name in enumerate(SWEEP_METRICS)}
(
    _TOTAL_RETURN,
    _FINAL,
    _CAGR,
    _RETURN_ANN,
    _VOLATILITY,
    _SHARPE,
    _SORTINO,
    _CALMAR,
    _MAX_DRAWDOWN,
    _DRAWDOWN_DURATION,
    _EXPOSURE,
    _TRADE_COUNT,
    _WIN_RATE,
    _BEST,
    _WORST,
    _PROFIT_FACTOR,
    _EXPECTANCY,
    _HOLDING,
) = range(len(SWEEP_METRICS))
_DAY_MS = 86_400_000
_YEAR_MS = 365.25 * _DAY_MS
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_DAYS_PER_YEAR = 365


@dataclass(frozen=True)
class WalkForward:
    """Rolling windows over the bars: `in_sample_bars` to choose on, then `out_of_sample_bars` to
    evaluate the choice; each window starts `step_bars` (default: out_of_sample_bars) after the last."""

    in_sample_bars: int
    out_of_sample_bars: int
    step_bars: int | None = None

    def __post_init__(self) -> None:
        for name in ("in_sample_bars", "out_of_sample_bars", "step_bars"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 2):
                raise BacktestInputError(f"WalkForward.{name} must be an integer >= 2, got {value!r}")

    def windows(self, bars: int) -> list[tuple[int, int, int]]:
        """(in-sample start, out-of-sample start, out-of-sample end) row ranges that fit in `bars`."""
        step = self.step_bars or self.out_of_sample_bars
        starts = range(0, bars - self.in_sample_bars - self.out_of_sample_bars + 1, step)
        found = [(s, s + self.in_sample_bars, s + self.in_sample_bars + self.out_of_sample_bars) for s in starts]
        if not found:
            raise BacktestInputError(
                f"{bars} bars hold no walk-forward window of {self.in_sample_bars} + {self.out_of_sample_bars}"
            )
        return found


@dataclass(frozen=True)
class SweepResult:
    """results       one row per parameter set (params..., SWEEP_METRICS); in walk-forward mode one
                     per (window, set) over the in-sample bars, with the window's columns first
    best          the parameters with the highest `metric` (walk-forward: the last window's choice)
    walk_forward  per window: its bars, the chosen parameters, their in-sample `metric` and their
                  out-of-sample SWEEP_METRICS; None without walk-forward
    skipped       grid combinations the kind refused (e.g. fast >= slow)
    """

    kind: str
    metric: str
    results: pl.DataFrame
    best: dict[str, Any]
    walk_forward: pl.DataFrame | None
    skipped: int
    params: dict[str, Any]


def run_sweep(
    candles: pl.DataFrame,
    kind: str,
    grid: Mapping[str, Sequence[Any]],
    *,
    metric: str = "sharpe",
    walk_forward: WalkForward | None = None,
    interval: str | None = None,
    start: dt.datetime | None = None,
    chunk_size: int = 64,
    **costs: Any,
) -> SweepResult:
    """Every valid combination of `grid` (parameter -> values; parameters left out keep the kind's
    defaults) on one symbol's candles; `costs` are run_backtest's fee, slippage, initial_cash, sizing,
    stop_loss, take_profit, leverage, funding and brackets. With `start`, the candles before it are the
    indicators' warm-up only: trading (and every walk-forward window) begins at the first bar from `start`."""
    if kind not in STRATEGY_CLASSES:
        raise BacktestInputError(f"unknown strategy kind {kind!r}; expected one of {', '.join(STRATEGY_CLASSES)}")
    if metric not in OPTIMISABLE:
        raise BacktestInputError(f"metric must be one of {', '.join(OPTIMISABLE)}, got {metric!r}")
    unknown = sorted(set(costs) - set(COSTS))
    if unknown:
        raise BacktestInputError(f"unknown cost parameters {unknown}; expected some of {', '.join(COSTS)}")
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise BacktestInputError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    settings = {
        "fee": 0.001,
        "slippage": 0.0002,
        "initial_cash": 10_000.0,
        "sizing": EquityFraction(1.0),
        "stop_loss": None,
        "take_profit": None,
        "leverage": 1.0,
        **costs,
    }
    _check_parameters(*(settings[k] for k in COSTS[:7]))
    strategies, skipped = _strategies(kind, grid)

    frame = _ordered(candles)
    symbols, starts = _symbol_blocks(frame)
    if len(symbols) != 1:
        raise BacktestInputError(f"run_sweep takes one symbol's candles, got {len(symbols)}: {symbols}")
    times = _read_only(frame.get_column("open_time").dt.epoch("ms").to_numpy())
    prices = [_read_only(_prices(frame, name)) for name in PRICE_COLUMNS]
    funding = [_read_only(a) for a in _funding_events(settings.get("funding"), symbols, starts, times)]
    brackets = settings.get("brackets", BTCUSDT_BRACKETS)
    fixed = (
        *funding,
        float(settings["initial_cash"]),
        _costs(*(settings[k] for k in ("fee", "slippage", "sizing", "stop_loss", "take_profit", "leverage"))),
        _read_only(np.stack(brackets.arrays())),
    )
    day_end = np.ones(frame.height, dtype=np.uint8)  # the last bar of each UTC day (daily closes)
    day_end[:-1] = np.diff(times // _DAY_MS) != 0
    series = (*prices, times, _read_only(day_end))
    signals = (
        _EmaCrossSignals(frame, strategies)
        if kind == "ema_crossover"
        else _StrategySignals(frame, strategies, interval)
    )
    lanes = numba.get_num_threads()

    def evaluate(indices: Sequence[int], ranges: np.ndarray) -> np.ndarray:
        """Metrics of the sets `indices` on the row ranges, (sets, ranges, SWEEP_METRICS)."""
        found = []
        for first in range(0, len(indices), chunk_size):
            source = signals.chunk(indices[first : first + chunk_size])
            found.append(signals.kernel(*series, *source, ranges, lanes, *fixed))
        return np.concatenate(found)

    names = list(grid)
    params_of = [{name: getattr(s, name) for name in names} for s in strategies]
    run_params = {k: _describe(v) for k, v in settings.items() if k != "funding"}
    run_params |= {"grid": {k: list(v) for k, v in grid.items()}, "sets": len(strategies), "bars": frame.height}
    everything = list(range(len(strategies)))
    first = 0 if start is None else int(np.searchsorted(times, (start - _EPOCH) // dt.timedelta(milliseconds=1)))
    if first >= frame.height:
        raise BacktestInputError(f"no candle opens at or after the start {start.isoformat()}")
    run_params["traded_bars"] = frame.height - first
    if walk_forward is None:
        metrics = evaluate(everything, np.array([[first, frame.height]], dtype=np.int64))[:, 0, :]
        results = _frame(params_of, metrics, names)
        return SweepResult(kind, metric, results, params_of[_best(metrics, metric)], None, skipped, run_params)

    windows = [(a + first, b + first, c + first) for a, b, c in walk_forward.windows(frame.height - first)]
    in_sample = evaluate(everything, np.array([(a, b) for a, b, _ in windows], dtype=np.int64))
    chosen = [_best(in_sample[:, w, :], metric) for w in range(len(windows))]
    distinct = sorted(set(chosen))
    out_of_sample = evaluate(distinct, np.array([(b, c) for _, b, c in windows], dtype=np.int64))
    open_time = frame.get_column("open_time")
    bounds = [
        {
            "window": w,
            "in_sample_start": open_time[a],
            "in_sample_end": open_time[b - 1],
            "out_of_sample_start": open_time[b],
            "out_of_sample_end": open_time[c - 1],
        }
        for w, (a, b, c) in enumerate(windows)
    ]
    results = pl.concat(
        [
            pl.DataFrame([bounds[w]] * len(strategies))
            .select("window", "in_sample_start", "in_sample_end")
            .hstack(_frame(params_of, in_sample[:, w, :], names))
            for w in range(len(windows))
        ]
    )
    rows = [
        {**bounds[w], **params_of[p], f"in_sample_{metric}": _value(in_sample[p, w, _M[metric]])}
        for w, p in enumerate(chosen)
    ]
    oos = np.stack([out_of_sample[distinct.index(p), w, :] for w, p in enumerate(chosen)])
    table = pl.DataFrame(rows).hstack(_frame([{}] * len(rows), oos, []))
    return SweepResult(kind, metric, results, params_of[chosen[-1]], table, skipped, run_params)


# --- parameter sets and their signals -----------------------------------------------------------------


def _strategies(kind: str, grid: Mapping[str, Sequence[Any]]) -> tuple[list[Strategy], int]:
    cls = STRATEGY_CLASSES[kind]
    known = cls.param_names()
    for name, values in grid.items():
        if name not in known:
            raise BacktestInputError(f"{kind} has no parameter {name!r} (expected one of {', '.join(known)})")
        if isinstance(values, str) or not isinstance(values, Sequence) or not values:
            raise BacktestInputError(f"grid[{name!r}] must be a non-empty list of values, got {values!r}")
    strategies, skipped = [], 0
    for number, values in enumerate(itertools.product(*grid.values())):
        try:
            strategies.append(cls(name=f"{kind}_{number}", **dict(zip(grid, values, strict=True))))
        except ConfigError:
            skipped += 1
    if not strategies:
        raise BacktestInputError(f"no combination of the grid is a valid {kind} ({skipped} refused)")
    return strategies, skipped


class _EmaCrossSignals:
    """ema_crossover sets: one EMA per distinct period; the kernel derives each pair's crossings."""

    def __init__(self, frame: pl.DataFrame, strategies: list[Strategy]) -> None:
        periods = sorted({s.fast for s in strategies} | {s.slow for s in strategies})  # type: ignore[attr-defined]
        lines = frame.select(ema("close", p).alias(str(p)) for p in periods)
        self.lines = _read_only(np.ascontiguousarray(lines.to_numpy(order="c").T.astype(np.float64)))
        row = {p: r for r, p in enumerate(periods)}
        self.fast = np.array([row[s.fast] for s in strategies], dtype=np.int64)  # type: ignore[attr-defined]
        self.slow = np.array([row[s.slow] for s in strategies], dtype=np.int64)  # type: ignore[attr-defined]
        self.shorts = np.array([s.can_short for s in strategies], dtype=np.bool_)

    def chunk(self, indices: Sequence[int]) -> tuple[np.ndarray, ...]:
        picked = np.asarray(indices, dtype=np.int64)
        return self.lines, self.fast[picked], self.slow[picked], self.shorts[picked]

    @staticmethod
    def kernel(*arguments: Any) -> np.ndarray:
        return _sweep_crossings(*arguments)


class _StrategySignals:
    """Any kind: each set's Strategy.signals over the candles (plus features, computed once if read)."""

    def __init__(self, frame: pl.DataFrame, strategies: list[Strategy], interval: str | None) -> None:
        try:
            strategies[0].signals(frame.head(0))
        except pl.exceptions.ColumnNotFoundError:
            frame = _with_features(frame, interval)
        self.frame = frame
        self.strategies = strategies

    def chunk(self, indices: Sequence[int]) -> tuple[np.ndarray, ...]:
        evaluated = [self.strategies[i].signals(self.frame) for i in indices]
        return tuple(np.stack([_signal(f, name) for f in evaluated]) for name in SIGNALS)

    @staticmethod
    def kernel(*arguments: Any) -> np.ndarray:
        return _sweep_signals(*arguments)


def _best(metrics: np.ndarray, metric: str) -> int:
    """Row of the highest `metric` (the first on ties); a set whose metric is undefined never wins
    unless all are."""
    values = metrics[:, _M[metric]]
    return int(np.nanargmax(values)) if not np.isnan(values).all() else 0


def _frame(params_of: list[dict[str, Any]], metrics: np.ndarray, names: list[str]) -> pl.DataFrame:
    columns = {name: [p[name] for p in params_of] for name in names}
    values = {m: pl.Series(m, metrics[:, i], nan_to_null=True) for m, i in _M.items()}
    values["trade_count"] = values["trade_count"].cast(pl.Int64)
    return pl.DataFrame({**columns, **values}) if columns else pl.DataFrame(values)


def _value(number: float) -> float | None:
    return None if math.isnan(number) else float(number)


def _describe(value: Any) -> Any:
    """A run parameter as reports show it: sizing as a dict, a bracket table by its symbol."""
    if isinstance(value, EquityFraction | FixedNotional):
        return {"kind": type(value).__name__, **vars(value)}
    return value.symbol if isinstance(value, MarginBrackets) else value


# --- compiled kernels ---------------------------------------------------------------------------------


@njit(cache=True, parallel=True)
def _sweep_crossings(
    open_,
    high,
    low,
    close,
    times,
    day_end,
    lines,
    fast_rows,
    slow_rows,
    shorts,
    ranges,
    lanes,
    funding_bar,
    funding_rate,
    funding_price,
    initial_cash,
    costs,
    brackets,
):
    """ema_crossover: each lane takes every lanes-th (fast, slow) pair, derives its signals into its
    own buffers and evaluates it on every row range; returns (sets, ranges, SWEEP_METRICS)."""
    sets, bars = len(fast_rows), len(open_)
    out = np.full((sets, ranges.shape[0], len(SWEEP_METRICS)), np.nan)
    for lane in prange(lanes):
        signals = np.empty((4, bars), np.uint8)
        equity, ints, floats = np.empty(bars), np.empty((bars + 1, 5), np.int64), np.empty((bars + 1, 8))
        for p in range(lane, sets, lanes):
            _crossing_signals(lines[fast_rows[p]], lines[slow_rows[p]], shorts[p], signals)
            for w in range(ranges.shape[0]):
                _evaluate(
                    open_, high, low, close, times, day_end, signals[0], signals[1], signals[2], signals[3],
                    ranges[w, 0], ranges[w, 1], funding_bar, funding_rate, funding_price, initial_cash, costs,
                    brackets, equity, ints, floats, out[p, w],
                )  # fmt: skip
    return out


@njit(cache=True, parallel=True)
def _sweep_signals(
    open_,
    high,
    low,
    close,
    times,
    day_end,
    enter_long,
    exit_long,
    enter_short,
    exit_short,
    ranges,
    lanes,
    funding_bar,
    funding_rate,
    funding_price,
    initial_cash,
    costs,
    brackets,
):
    """Any kind: the sets' signal rows, each lane evaluating every lanes-th set on every row range."""
    sets, bars = enter_long.shape[0], len(open_)
    out = np.full((sets, ranges.shape[0], len(SWEEP_METRICS)), np.nan)
    for lane in prange(lanes):
        equity, ints, floats = np.empty(bars), np.empty((bars + 1, 5), np.int64), np.empty((bars + 1, 8))
        for p in range(lane, sets, lanes):
            for w in range(ranges.shape[0]):
                _evaluate(
                    open_, high, low, close, times, day_end, enter_long[p], exit_long[p], enter_short[p],
                    exit_short[p], ranges[w, 0], ranges[w, 1], funding_bar, funding_rate, funding_price,
                    initial_cash, costs, brackets, equity, ints, floats, out[p, w],
                )  # fmt: skip
    return out


@njit(cache=True)
def _crossing_signals(fast, slow, shorts, signals):
    """EmaCrossover's four signals into `signals` rows: fast crossing above slow enters long and exits
    short, below the reverse; NaN (warm-up) compares False, as the strategy's nulls do."""
    signals[:, 0] = 0
    for i in range(1, len(fast)):
        up = fast[i - 1] < slow[i - 1] and fast[i] >= slow[i]
        down = fast[i - 1] > slow[i - 1] and fast[i] <= slow[i]
        signals[0, i] = up
        signals[1, i] = down
        signals[2, i] = down and shorts
        signals[3, i] = up and shorts


@njit(cache=True)
def _evaluate(
    open_,
    high,
    low,
    close,
    times,
    day_end,
    enter_long,
    exit_long,
    enter_short,
    exit_short,
    lo,
    hi,
    funding_bar,
    funding_rate,
    funding_price,
    initial_cash,
    costs,
    brackets,
    equity,
    ints,
    floats,
    out,
):
    """One set on rows [lo, hi), starting flat: the engine's `_simulate_series`, then the metrics."""
    bars = hi - lo
    inside = (funding_bar >= lo) & (funding_bar < hi)
    # check=False: run_sweep checked the bars once, not once per set.
    count, _, _ = _simulate_series(
        open_[lo:hi], high[lo:hi], low[lo:hi], close[lo:hi], enter_long[lo:hi], exit_long[lo:hi],
        enter_short[lo:hi], exit_short[lo:hi], 0, bars, 0, funding_bar[inside] - lo, funding_rate[inside],
        funding_price[inside], 0, initial_cash, costs, brackets, equity, ints, floats, 0, times[lo:hi], False,
        np.empty(0, np.int64), np.empty((0, 3)), 0,  # no segments: it marks every bar into `equity`
    )  # fmt: skip
    _series_metrics(times[lo:hi], day_end[lo:hi], equity[:bars], ints[:count], floats[:count], initial_cash, out)


@njit(cache=True, error_model="numpy")  # x / 0 is inf or NaN, as in compute_metrics' numpy
def _series_metrics(times, day_end, equity, ints, floats, initial_cash, out):
    """backtest.metrics.compute_metrics on one series, into `out` (NaN where it gives None)."""
    bars = len(equity)
    final = equity[-1]
    growth = final / initial_cash
    out[_TOTAL_RETURN] = (growth - 1.0) * 100.0
    out[_FINAL] = final

    # Drawdown from the running peak, which starts at the initial cash; its longest duration.
    peak = initial_cash
    max_drawdown = 0.0
    longest = 0
    last_peak = 0
    previous_at_peak = True
    for i in range(bars):
        peak = max(peak, equity[i])
        drawdown = 1.0 - equity[i] / peak
        max_drawdown = max(max_drawdown, drawdown)
        at_peak = drawdown <= 0
        if i > 0 and (not previous_at_peak or not at_peak):
            longest = max(longest, times[i] - times[last_peak])
        if at_peak:
            last_peak = i
        previous_at_peak = at_peak
    out[_MAX_DRAWDOWN] = -max_drawdown * 100.0 if max_drawdown > 0 else 0.0
    out[_DRAWDOWN_DURATION] = longest / 1000.0

    years = (times[-1] - times[0]) / _YEAR_MS
    if years > 0 and growth >= 0:
        out[_CAGR] = _finite((growth ** (1.0 / years) - 1.0) * 100.0)

    # Returns between consecutive UTC daily closes (the last equity of each day with bars).
    returns = np.empty(bars)
    days = 0
    previous_close = math.nan
    for i in range(bars):
        if day_end[i] or i == bars - 1:
            if not math.isnan(previous_close):
                returns[days] = equity[i] / previous_close - 1.0
                days += 1
            previous_close = equity[i]
    _risk_metrics(returns[:days], max_drawdown, out)

    count = len(ints)
    out[_TRADE_COUNT] = count
    covered = 0
    last_covered = -1
    for k in range(count):
        first = max(ints[k, 2], last_covered + 1)
        if ints[k, 3] >= first:
            covered += ints[k, 3] - first + 1
        last_covered = max(last_covered, ints[k, 3])
    out[_EXPOSURE] = covered / bars * 100.0
    if count == 0:
        return
    wins = 0
    best, worst = -math.inf, math.inf
    total = gains = losses = 0.0
    holding = 0
    for k in range(count):
        ret = floats[k, 6]
        wins += floats[k, 5] > 0
        best, worst = max(best, ret), min(worst, ret)
        total += ret
        if ret > 0:
            gains += ret
        elif ret < 0:
            losses -= ret
        holding += times[ints[k, 3]] - times[ints[k, 2]]
    out[_WIN_RATE] = wins / count * 100.0
    out[_BEST] = _finite(best * 100.0)
    out[_WORST] = _finite(worst * 100.0)
    out[_PROFIT_FACTOR] = _ratio(gains, losses)
    out[_EXPECTANCY] = _finite(total / count * 100.0)
    out[_HOLDING] = holding / count / 1000.0


@njit(cache=True, error_model="numpy")
def _risk_metrics(returns, max_drawdown, out):
    """Annual return and volatility from the geometric mean daily return, Sharpe, Sortino, Calmar."""
    days = len(returns)
    if days == 0 or not np.isfinite(returns).all():
        return
    mean_log = 0.0
    wiped_out = False
    for r in returns:
        if r + 1.0 <= 0:
            wiped_out = True
        else:
            mean_log += math.log(r + 1.0)
    growth = 1.0 if wiped_out else math.exp(mean_log / days)  # backtesting.py: 0 % when capital is wiped out
    variance = returns.var() * days / (days - 1) if days > 1 else math.nan
    annual = _finite(growth**_DAYS_PER_YEAR - 1.0)
    volatility = _finite(math.sqrt((variance + growth**2) ** _DAYS_PER_YEAR - growth ** (2 * _DAYS_PER_YEAR)))
    downside = _finite(math.sqrt(np.mean(np.minimum(returns, 0.0) ** 2)) * math.sqrt(_DAYS_PER_YEAR))
    out[_RETURN_ANN] = annual * 100.0
    out[_VOLATILITY] = volatility * 100.0
    out[_SHARPE] = _ratio(annual, volatility)
    out[_SORTINO] = _ratio(annual, downside)
    out[_CALMAR] = _ratio(annual, max_drawdown)


@njit(cache=True)
def _finite(value):
    return value if math.isfinite(value) else math.nan


@njit(cache=True, error_model="numpy")
def _ratio(numerator, denominator):
    if math.isnan(numerator) or math.isnan(denominator) or denominator == 0:
        return math.nan
    return _finite(numerator / denominator)
