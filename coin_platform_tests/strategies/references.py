"""Test inputs and an independent reference for every built-in rule: TA-Lib on numpy and explicit loops."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import talib

from coin_platform.features import compute_features
from coin_platform.strategies import EmaCrossover, MacdCrossover, RsiReversal, Strategy, VolumeZoneBreakout

START = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)


def random_walk_candles(rows: int, seed: int, start: dt.datetime = START) -> pl.DataFrame:
    """1m candles of a geometric random walk with gamma volume (surges happen, so breakouts fire)."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 2e-3, rows)))
    spread = np.abs(rng.normal(0.0, 1e-3, rows)) * close
    return pl.DataFrame(
        {
            "open_time": [start + dt.timedelta(minutes=i) for i in range(rows)],
            "high": close + spread,
            "low": close - spread,
            "close": close,
            "volume": rng.gamma(2.0, 50.0, rows),
        }
    )


def random_walk_features(rows: int, seed: int, start: dt.datetime = START) -> pl.DataFrame:
    return compute_features(random_walk_candles(rows, seed, start), "1m")


def crossings(series: np.ndarray, level: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(up, down): up where series[t-1] < level[t-1] and series[t] >= level[t]; down mirrored.

    NaN (warm-up) compares False, so no crossing touches a warm-up row.
    """
    up = np.zeros(len(series), dtype=bool)
    down = np.zeros(len(series), dtype=bool)
    for t in range(1, len(series)):
        up[t] = series[t - 1] < level[t - 1] and series[t] >= level[t]
        down[t] = series[t - 1] > level[t - 1] and series[t] <= level[t]
    return up, down


def _column(frame: pl.DataFrame, name: str) -> np.ndarray:
    return frame.get_column(name).cast(pl.Float64).fill_null(np.nan).to_numpy()


def reference_signals(strategy: Strategy, features: pl.DataFrame) -> dict[str, np.ndarray]:
    """The four signals of `strategy` on a one-symbol features frame, computed without coin_platform."""
    close = _column(features, "close")
    n = len(close)
    if isinstance(strategy, RsiReversal):
        value = talib.RSI(close, timeperiod=strategy.period)
        up, _ = crossings(value, np.full(n, float(strategy.oversold)))
        _, down = crossings(value, np.full(n, float(strategy.overbought)))
    elif isinstance(strategy, EmaCrossover):
        fast = talib.EMA(close, timeperiod=strategy.fast)
        slow = talib.EMA(close, timeperiod=strategy.slow)
        up, down = crossings(fast, slow)
    elif isinstance(strategy, MacdCrossover):
        line, signal, _ = talib.MACD(
            close, fastperiod=strategy.fast, slowperiod=strategy.slow, signalperiod=strategy.signal
        )
        up, down = crossings(line, signal)
    elif isinstance(strategy, VolumeZoneBreakout):
        return _volume_zone_reference(strategy, features)
    else:
        raise TypeError(f"no reference for {strategy!r}")
    return {"enter_long": up, "exit_long": down, "enter_short": down, "exit_short": up}


def _volume_zone_reference(strategy: VolumeZoneBreakout, features: pl.DataFrame) -> dict[str, np.ndarray]:
    close, volume = _column(features, "close"), _column(features, "volume")
    low, high = _column(features, "zone_low"), _column(features, "zone_high")
    average = talib.SMA(volume, timeperiod=strategy.volume_window)
    n = len(close)
    signals = {name: np.zeros(n, dtype=bool) for name in ("enter_long", "exit_long", "enter_short", "exit_short")}
    for t in range(2, n):
        above = close[t - 1] <= high[t - 2] and close[t] > high[t - 1]
        below = close[t - 1] >= low[t - 2] and close[t] < low[t - 1]
        surge = volume[t] > strategy.volume_ratio * average[t - 1] and volume[t] > volume[t - 1]
        signals["enter_long"][t] = above and surge
        signals["exit_long"][t] = below
        signals["enter_short"][t] = below and surge
        signals["exit_short"][t] = above
    return signals
