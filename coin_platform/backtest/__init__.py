"""Backtests of the live strategies: a compiled engine, margin and funding accounting, look-ahead guards.

    from coin_platform.backtest import run_backtest
    from coin_platform.strategies import EmaCrossover

    result = run_backtest(candles, EmaCrossover(name="ema", fast=10, slow=30), fee=0.001)
    result.trades, result.total_equity, result.metrics

Pure domain code (polars, numpy, numba); no Dagster.
"""

from coin_platform.backtest.engine import (
    BacktestInputError,
    EquityFraction,
    FixedNotional,
    Sizing,
    run_backtest,
    simulate,
    strategy_signals,
)
from coin_platform.backtest.margin import BTCUSDT_BRACKETS, Bracket, MarginBrackets, liquidation_price
from coin_platform.backtest.result import EXIT_REASONS, BacktestResult

__all__ = [
    "BTCUSDT_BRACKETS",
    "EXIT_REASONS",
    "BacktestInputError",
    "BacktestResult",
    "Bracket",
    "EquityFraction",
    "FixedNotional",
    "MarginBrackets",
    "Sizing",
    "liquidation_price",
    "run_backtest",
    "simulate",
    "strategy_signals",
]
