"""Backtests: the compiled engine, its accounting, metrics, reports and parameter sweeps."""
