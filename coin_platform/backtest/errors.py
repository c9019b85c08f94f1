"""The errors a backtest's inputs raise, apart from the engine: the Dagster layer catches them in every
backtest asset, and importing the engine for that would load numba into every run of the code location."""


class BacktestInputError(ValueError):
    """Candles, signals, funding or a parameter the engine cannot use; the message names it."""


class NoCandlesInRange(ValueError):
    """The range holds no candle of a requested symbol."""
