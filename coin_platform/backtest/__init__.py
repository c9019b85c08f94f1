"""Backtests of the live strategies: a compiled engine, margin and funding accounting, look-ahead
guards, parameter sweeps and walk-forward optimisation.

    from coin_platform.backtest import lookahead_analysis, recursive_analysis, run_backtest, run_sweep
    from coin_platform.strategies import EmaCrossover

    strategy = EmaCrossover(name="ema", fast=10, slow=30)
    result = run_backtest(candles, strategy, fee=0.001)
    result.trades, result.total_equity, result.metrics
    print(lookahead_analysis(candles, strategy), recursive_analysis(candles, strategy))
    run_sweep(candles, "ema_crossover", {"fast": [5, 10, 20], "slow": [30, 60]}).results

Pure domain code (polars, numpy, numba); no Dagster.
"""

import importlib

# Where each public name lives. Loaded on first use, so `coin_platform.backtest.request` (the client and
# the API) can be imported without compiling or loading the engine's numba kernels.
_MODULE_OF = {
    "LookaheadReport": "analysis",
    "RecursiveReport": "analysis",
    "lookahead_analysis": "analysis",
    "recursive_analysis": "analysis",
    "BacktestInputError": "errors",
    "EquityFraction": "engine",
    "FixedNotional": "engine",
    "Sizing": "engine",
    "run_backtest": "engine",
    "simulate": "engine",
    "strategy_signals": "engine",
    "BTCUSDT_BRACKETS": "margin",
    "Bracket": "margin",
    "MarginBrackets": "margin",
    "liquidation_price": "margin",
    "EXIT_REASONS": "result",
    "BacktestResult": "result",
    "SWEEP_METRICS": "sweep",
    "SweepResult": "sweep",
    "WalkForward": "sweep",
    "run_sweep": "sweep",
}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_MODULE_OF[name]}"), name)
