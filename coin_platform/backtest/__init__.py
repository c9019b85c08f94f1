"""Backtests of the live strategies: a compiled engine, margin and funding accounting, look-ahead guards.

    from coin_platform.backtest import lookahead_analysis, recursive_analysis, run_backtest
    from coin_platform.strategies import EmaCrossover

    strategy = EmaCrossover(name="ema", fast=10, slow=30)
    result = run_backtest(candles, strategy, fee=0.001)
    result.trades, result.total_equity, result.metrics
    print(lookahead_analysis(candles, strategy), recursive_analysis(candles, strategy))

Pure domain code (polars, numpy, numba); no Dagster.
"""

from coin_platform.backtest.analysis import LookaheadReport, RecursiveReport, lookahead_analysis, recursive_analysis
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
    "LookaheadReport",
    "MarginBrackets",
    "RecursiveReport",
    "Sizing",
    "liquidation_price",
    "lookahead_analysis",
    "recursive_analysis",
    "run_backtest",
    "simulate",
    "strategy_signals",
]
