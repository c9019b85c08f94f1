"""One Strategy interface for live candidate detection and backtests.

A strategy turns a features frame (coin_platform.features, optionally with a
`symbol` column) into four Boolean columns, enter_long, exit_long, enter_short
and exit_short, using only each row and the rows before it::

    from coin_platform.strategies import build_strategies, signal_rows

    strategies = build_strategies(settings.config.strategies, interval="15m")
    fired = signal_rows(strategies, features)   # symbol, open_time, strategy, signal
"""

from coin_platform.strategies.base import (
    SignalRules,
    Strategy,
    crosses_above,
    crosses_below,
    feature_or,
    signal_rows,
)
from coin_platform.strategies.builtin import EmaCrossover, MacdCrossover, RsiReversal, VolumeZoneBreakout
from coin_platform.strategies.registry import STRATEGY_CLASSES, build_strategies, build_strategy

__all__ = [
    "STRATEGY_CLASSES",
    "EmaCrossover",
    "MacdCrossover",
    "RsiReversal",
    "SignalRules",
    "Strategy",
    "VolumeZoneBreakout",
    "build_strategies",
    "build_strategy",
    "crosses_above",
    "crosses_below",
    "feature_or",
    "signal_rows",
]
