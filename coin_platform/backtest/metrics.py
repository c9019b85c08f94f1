"""Backtest statistics with backtesting.py's conventions, computed from the engine's frames.

Numbers people compare against other tools have to mean the same thing, so every
metric follows the definition backtesting.py 0.6.6 (`backtesting/_stats.py`)
uses, with crypto's calendar (365 trading days, weekends included):

* Returns and CAGR are against `initial_cash` (backtesting.py uses the first
  equity point, which is its initial cash).
* Annualised return, volatility, Sharpe, Sortino and Calmar come from the
  returns between consecutive UTC daily closes of the equity (the last value of
  each day), compounded: geometric mean daily return g, annual return
  (1 + g)^365 - 1; volatility sqrt((var + (1 + g)^2)^365 - (1 + g)^730) with the
  sample variance; Sharpe = annual return / volatility (risk-free rate 0);
  Sortino = annual return / (root mean square of the negative daily returns
  x sqrt 365); Calmar = annual return / |max drawdown|.
* CAGR uses calendar time: (final / initial)^(1 / years) - 1, years of 365.25 days.
* Drawdown is 1 - equity / running peak; a drawdown lasts from its peak bar to
  the bar that regains the peak, or to the last bar.
* Win rate counts trades with pnl > 0; profit factor is the sum of winning trade
  returns over the absolute sum of losing ones (returns, not USDT, as in
  backtesting.py); expectancy is the mean trade return.
* Exposure is the share of bars with an open position, a trade covering the bars
  whose open time lies in [entry_time, exit_time].

Deliberate differences, each because the value goes into JSON and Dagster metadata:

* Undefined values (no trades, no daily returns, zero volatility, no losing
  trade) are None, never NaN or inf.
* A curve that never draws down has a drawdown duration of 0 s (backtesting.py: NaN).
* Durations are exact seconds; backtesting.py rounds its timedeltas up to the data's
  resolution, so its "Avg. Trade Duration" can exceed ours by less than one bar.
* A drawdown that starts on the last bar lasts one bar (backtesting.py drops it).
* The equity may start below `initial_cash` (a fee paid on the first bar): the
  drawdown is measured from `initial_cash` then.
* Buy & hold runs over the `close` series given; backtesting.py skips its
  strategy's indicator warm-up, so pass the closes from the first tradable bar to match.
* The calendar is always 365 days resampled daily: backtesting.py switches to
  weekly/monthly/yearly periods only for bars of a week or longer, which the
  platform does not have.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import polars as pl

MetricValue = float | int | None

TRADING_DAYS_PER_YEAR = 365
DAYS_PER_YEAR = 365.25
_MS_PER_S = 1000
_MS_PER_YEAR = DAYS_PER_YEAR * 86_400 * _MS_PER_S

# Our key -> backtesting.py's stats name, in the order a report lists them.
METRIC_LABELS: dict[str, str] = {
    "total_return_pct": "Return [%]",
    "buy_and_hold_return_pct": "Buy & Hold Return [%]",
    "final_equity": "Equity Final [$]",
    "cagr_pct": "CAGR [%]",
    "return_ann_pct": "Return (Ann.) [%]",
    "volatility_ann_pct": "Volatility (Ann.) [%]",
    "sharpe": "Sharpe Ratio",
    "sortino": "Sortino Ratio",
    "calmar": "Calmar Ratio",
    "max_drawdown_pct": "Max. Drawdown [%]",
    "max_drawdown_duration_s": "Max. Drawdown Duration",
    "exposure_pct": "Exposure Time [%]",
    "trade_count": "# Trades",
    "win_rate_pct": "Win Rate [%]",
    "best_trade_pct": "Best Trade [%]",
    "worst_trade_pct": "Worst Trade [%]",
    "profit_factor": "Profit Factor",
    "expectancy_pct": "Expectancy [%]",
    "avg_holding_s": "Avg. Trade Duration",
}
# Metrics that are durations in seconds (shown as timedeltas in reports).
DURATION_METRICS = frozenset({"max_drawdown_duration_s", "avg_holding_s"})

_TRADE_COLUMNS = ("entry_time", "exit_time", "pnl", "return")
_EQUITY_COLUMNS = ("open_time", "equity")


def _finite(value: float | np.floating) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator == 0:
        return None
    return _finite(numerator / denominator)


def _require_columns(frame: pl.DataFrame, columns: tuple[str, ...], name: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} lacks column(s) {missing}; it has {frame.columns}")


def _validated_equity(equity: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(open times in ms, equity values) of one sorted, finite series."""
    _require_columns(equity, _EQUITY_COLUMNS, "equity")
    if equity.height == 0:
        raise ValueError("equity is empty: a backtest has at least one bar")
    if not isinstance(equity.schema["open_time"], pl.Datetime):
        raise ValueError(f"equity open_time must be a Datetime column, not {equity.schema['open_time']}")
    if "symbol" in equity.columns and equity["symbol"].n_unique() > 1:
        raise ValueError("equity holds several symbols; compute_metrics takes one series (see metrics_by_symbol)")
    times = equity["open_time"].dt.epoch("ms").to_numpy()
    values = equity["equity"].cast(pl.Float64).to_numpy()
    if np.any(np.diff(times) <= 0):
        raise ValueError("equity open_time must be strictly increasing (sorted, one row per bar)")
    if not np.all(np.isfinite(values)):
        raise ValueError("equity holds null, NaN or infinite values")
    return times, values


def _daily_returns(equity: pl.DataFrame) -> np.ndarray:
    """Returns between consecutive UTC daily closes (the last equity of each day that has bars)."""
    daily = equity.group_by_dynamic("open_time", every="1d").agg(pl.col("equity").last())
    closes = daily["equity"].cast(pl.Float64).to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        return closes[1:] / closes[:-1] - 1


def _geometric_mean(returns: np.ndarray) -> float:
    """backtesting.py's compounding mean: 0 when a return wipes out the capital (growth factor <= 0)."""
    growth = returns + 1
    if np.any(growth <= 0):
        return 0.0
    return float(np.exp(np.log(growth).mean()) - 1)


def _risk_metrics(daily_returns: np.ndarray, max_drawdown: float) -> dict[str, float | None]:
    if len(daily_returns) == 0 or not np.all(np.isfinite(daily_returns)):
        return dict.fromkeys(("return_ann_pct", "volatility_ann_pct", "sharpe", "sortino", "calmar"))
    days = TRADING_DAYS_PER_YEAR
    growth = np.float64(1 + _geometric_mean(daily_returns))  # numpy powers overflow to inf, then None
    variance = daily_returns.var(ddof=1) if len(daily_returns) > 1 else math.nan
    with np.errstate(invalid="ignore", over="ignore"):
        annual_return = _finite(growth**days - 1)
        volatility = _finite(np.sqrt((variance + growth**2) ** days - growth ** (2 * days)))
        downside = _finite(np.sqrt(np.mean(np.minimum(daily_returns, 0) ** 2)) * np.sqrt(days))
    return {
        "return_ann_pct": None if annual_return is None else annual_return * 100,
        "volatility_ann_pct": None if volatility is None else volatility * 100,
        "sharpe": _ratio(annual_return, volatility),
        "sortino": _ratio(annual_return, downside),
        "calmar": _ratio(annual_return, max_drawdown),
    }


def _drawdown(values: np.ndarray, initial_cash: float) -> np.ndarray:
    """1 - equity / running peak, the peak starting at `initial_cash`."""
    peak = np.maximum.accumulate(np.maximum(values, initial_cash))
    return 1 - values / peak


def _max_drawdown_duration_ms(times: np.ndarray, drawdown: np.ndarray) -> int:
    """Longest time from a peak bar to the bar regaining it (or the last bar); 0 without a drawdown."""
    at_peak = drawdown <= 0
    # Index of the latest peak bar; a drawdown below initial cash from the first bar counts from bar 0.
    last_peak = np.maximum.accumulate(np.where(at_peak, np.arange(len(times)), 0))
    in_or_ending_drawdown = ~at_peak[:-1] | ~at_peak[1:]
    spans = times[1:][in_or_ending_drawdown] - times[last_peak[:-1]][in_or_ending_drawdown]
    return int(spans.max()) if len(spans) else 0


def _exposure_pct(times: np.ndarray, trades: pl.DataFrame) -> float:
    """Share of bars whose open time lies inside some trade's [entry_time, exit_time]."""
    if trades.height == 0:
        return 0.0
    starts = np.searchsorted(times, trades["entry_time"].dt.epoch("ms").to_numpy(), side="left")
    ends = np.searchsorted(times, trades["exit_time"].dt.epoch("ms").to_numpy(), side="right")
    open_positions = np.zeros(len(times) + 1, dtype=np.int64)
    np.add.at(open_positions, starts, 1)
    np.add.at(open_positions, ends, -1)
    return float((np.cumsum(open_positions[:-1]) > 0).mean() * 100)


def _trade_metrics(trades: pl.DataFrame) -> dict[str, MetricValue]:
    count = trades.height
    if count == 0:
        return {
            "trade_count": 0,
            **dict.fromkeys(
                (
                    "win_rate_pct",
                    "best_trade_pct",
                    "worst_trade_pct",
                    "profit_factor",
                    "expectancy_pct",
                    "avg_holding_s",
                )
            ),
        }
    returns = trades["return"].cast(pl.Float64).to_numpy()
    pnl = trades["pnl"].cast(pl.Float64).to_numpy()
    if not (np.all(np.isfinite(returns)) and np.all(np.isfinite(pnl))):
        raise ValueError("trades hold null, NaN or infinite pnl/return values")
    holding_ms = (trades["exit_time"] - trades["entry_time"]).dt.total_milliseconds().to_numpy()
    if np.any(holding_ms < 0):
        raise ValueError("a trade exits before it enters (exit_time < entry_time)")
    losses = -returns[returns < 0].sum()
    return {
        "trade_count": count,
        "win_rate_pct": float((pnl > 0).mean() * 100),
        "best_trade_pct": _finite(returns.max() * 100),
        "worst_trade_pct": _finite(returns.min() * 100),
        "profit_factor": _ratio(float(returns[returns > 0].sum()), float(losses)),
        "expectancy_pct": _finite(returns.mean() * 100),
        "avg_holding_s": float(holding_ms.mean() / _MS_PER_S),
    }


def _buy_and_hold_pct(close: pl.Series | None) -> float | None:
    if close is None:
        return None
    prices = close.drop_nulls().cast(pl.Float64).to_numpy()
    if len(prices) == 0 or prices[0] <= 0:
        return None
    return _finite((prices[-1] / prices[0] - 1) * 100)


def compute_metrics(
    trades: pl.DataFrame,
    equity: pl.DataFrame,
    initial_cash: float,
    *,
    close: pl.Series | None = None,
) -> dict[str, MetricValue]:
    """The METRIC_LABELS statistics of one equity series (open_time, equity) and its trades.

    `close` (the instrument's closes over the same window) adds the buy & hold return;
    without it that key is None.
    """
    if not (math.isfinite(initial_cash) and initial_cash > 0):
        raise ValueError(f"initial_cash must be a positive number, got {initial_cash!r}")
    _require_columns(trades, _TRADE_COLUMNS, "trades")
    times, values = _validated_equity(equity)
    final = float(values[-1])
    drawdown = _drawdown(values, initial_cash)
    max_drawdown = float(drawdown.max())
    years = (times[-1] - times[0]) / _MS_PER_YEAR
    growth = np.float64(final / initial_cash)
    with np.errstate(over="ignore"):
        cagr = _finite((growth ** (1 / years) - 1) * 100) if years > 0 and growth >= 0 else None
    found: dict[str, MetricValue] = {
        "total_return_pct": float(growth - 1) * 100,
        "buy_and_hold_return_pct": _buy_and_hold_pct(close),
        "final_equity": final,
        "cagr_pct": cagr,
        **_risk_metrics(_daily_returns(equity.select(_EQUITY_COLUMNS)), max_drawdown),
        "max_drawdown_pct": -max_drawdown * 100 if max_drawdown > 0 else 0.0,
        "max_drawdown_duration_s": _max_drawdown_duration_ms(times, drawdown) / _MS_PER_S,
        "exposure_pct": _exposure_pct(times, trades),
        **_trade_metrics(trades),
    }
    return {key: found[key] for key in METRIC_LABELS}


def metrics_frame_schema() -> dict[str, pl.DataType]:
    """Column types of a metrics_by_symbol frame: symbol, then one column per METRIC_LABELS key."""
    return {"symbol": pl.String(), **{k: pl.Int64() if k == "trade_count" else pl.Float64() for k in METRIC_LABELS}}


def metrics_by_symbol(
    trades: pl.DataFrame,
    equity_per_symbol: pl.DataFrame,
    initial_cash_per_symbol: Mapping[str, float],
    *,
    candles: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """One row of compute_metrics per symbol sleeve (equity_per_symbol: open_time, symbol, equity).

    `candles` (open_time, symbol, close) adds each symbol's buy & hold return over its equity's window.
    """
    _require_columns(equity_per_symbol, ("symbol", *_EQUITY_COLUMNS), "equity_per_symbol")
    _require_columns(trades, ("symbol", *_TRADE_COLUMNS), "trades")
    symbols = sorted(equity_per_symbol["symbol"].unique().to_list())
    strays = sorted(set(trades["symbol"].unique().to_list()) - set(symbols))
    if strays:
        raise ValueError(f"trades of symbol(s) {strays} have no equity series")
    missing_cash = [s for s in symbols if s not in initial_cash_per_symbol]
    if missing_cash:
        raise ValueError(f"initial_cash_per_symbol lacks symbol(s) {missing_cash}")
    if candles is not None:
        _require_columns(candles, ("open_time", "symbol", "close"), "candles")
    rows = []
    for symbol in symbols:
        equity = equity_per_symbol.filter(pl.col("symbol") == symbol).sort("open_time")
        close = None
        if candles is not None:
            window = pl.col("open_time").is_between(equity["open_time"].min(), equity["open_time"].max())
            close = candles.filter((pl.col("symbol") == symbol) & window).sort("open_time")["close"]
        found = compute_metrics(
            trades.filter(pl.col("symbol") == symbol),
            equity,
            initial_cash_per_symbol[symbol],
            close=close,
        )
        rows.append({"symbol": symbol, **found})
    return pl.DataFrame(rows, schema=metrics_frame_schema())
