"""One resolved backtest request, run: the engine over the strategy's signals, or the live decision path.

Candles arrive with their warm-up: `warmup_start` candles before the range (LOOKBACK_CANDLES, the
feature builds' look-back, never before the history start), so the recursive indicators on the
range's first bar are those live detection saw. Signals are computed over everything given and
only the range's bars trade.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import polars as pl

from coin_platform.backtest.decision_path import run_decision_path
from coin_platform.backtest.engine import EquityFraction, FixedNotional, simulate, strategy_signals
from coin_platform.backtest.errors import NoCandlesInRange
from coin_platform.backtest.ledger import decision_path_result
from coin_platform.backtest.request import ResolvedBacktest
from coin_platform.backtest.result import BacktestResult
from coin_platform.core.intervals import interval_ms
from coin_platform.features import LOOKBACK_CANDLES
from coin_platform.settings import PlatformConfig
from coin_platform.strategies import Strategy


def warmup_start(request: ResolvedBacktest, history_start: dt.date) -> dt.datetime:
    """Where the candles of `request` must start: LOOKBACK_CANDLES before its range, not before the history."""
    back = request.range_start - dt.timedelta(milliseconds=LOOKBACK_CANDLES * interval_ms(request.interval))
    first = dt.datetime(history_start.year, history_start.month, history_start.day, tzinfo=dt.UTC)
    return max(first, back)


def run_request(
    request: ResolvedBacktest,
    strategy: Strategy,
    candles: pl.DataFrame,
    config: PlatformConfig,
    *,
    funding: pl.DataFrame | None = None,
) -> BacktestResult:
    """Backtest `strategy` on `candles` (symbol, open_time, OHLCV, warm-up included) as `request` says."""
    in_range = pl.col("open_time").is_between(request.range_start, request.range_end)
    if missing := sorted(set(request.symbols) - set(candles.filter(in_range)["symbol"].unique())):
        raise NoCandlesInRange(
            f"no {request.interval} candles of {', '.join(missing)} from {request.start} to {request.end}"
        )
    params = {
        "strategy": {
            "name": strategy.name,
            "kind": strategy.kind,
            **{n: getattr(strategy, n) for n in strategy.param_names()},
        },
        "interval": request.interval,
        "start": request.start,
        "end": request.end,
    }
    if request.decision_path:
        return _decision_path(request, strategy, candles, config, params)
    frame, features_computed = strategy_signals(candles, strategy, interval=request.interval)
    sizing = (
        EquityFraction(request.fraction) if request.sizing == "equity_fraction" else FixedNotional(request.notional)
    )
    result = simulate(
        frame.filter(in_range),
        fee=request.fee,
        slippage=request.slippage,
        initial_cash=request.initial_cash,
        sizing=sizing,
        stop_loss=request.stop_loss,
        take_profit=request.take_profit,
        leverage=request.leverage,
        # Binance stamps a funding a few milliseconds after its hour; it is paid at the hour.
        funding=funding.with_columns(pl.col("funding_time").dt.truncate("1s"))
        if request.funding and funding is not None
        else None,
    )
    result.params.update(params, features_computed=features_computed)
    return result


def _decision_path(
    request: ResolvedBacktest, strategy: Strategy, candles: pl.DataFrame, config: PlatformConfig, params: dict
) -> BacktestResult:
    """The strategy alone on the requested interval, through scorer, risk guard and paper broker, as live."""
    tested = dataclasses.replace(strategy, intervals=(request.interval,))
    trading = config.trading.model_copy(update={"fee_rate": request.fee, "slippage_rate": request.slippage})
    live_like = config.model_copy(
        update={
            "intervals": tuple(dict.fromkeys((*config.intervals, request.interval))),
            "strategies": tuple(
                s.model_copy(update={"enabled": True, "intervals": (request.interval,)})
                for s in config.strategies
                if s.name == strategy.name
            ),
            "trading": trading,
        }
    )
    run = run_decision_path(
        {request.interval: candles.filter(pl.col("symbol").is_in(list(request.symbols)))},
        [tested],
        live_like,
        start=request.range_start,
    )
    in_range = run.candles.filter(pl.col("open_time") <= request.range_end)
    run = dataclasses.replace(run, candles=in_range.filter(pl.col("open_time") >= request.range_start))
    return decision_path_result(run, request.initial_cash, {**params, "fee": request.fee, "slippage": request.slippage})
