"""The feature set, one named column each; it types the parquet objects and the ClickHouse tables.

    open_time, close, volume                  the candle (never null)
    ema_20, ema_50                            TA-Lib EMA (seeded with the SMA of the first N closes)
    rsi_14                                    TA-Lib RSI (Wilder)
    macd, macd_signal, macd_hist              TA-Lib MACD 12/26/9
    bb_upper, bb_middle, bb_lower             TA-Lib Bollinger 20, 2σ
    atr_14                                    TA-Lib ATR (Wilder)
    zone_low, zone_high, zone_volume_share    volume-by-price zone, `ZONE_BINS` bins, over the trailing
                                              `zone_window(interval)` candles

Indicator columns are null during their warm-up (`INDICATOR_COLUMNS`); the candle's are never null.
"""

from __future__ import annotations

import polars as pl

from coin_platform.core.time import UTC_MS

CANDLE_COLUMNS = ("open_time", "close", "volume")
INDICATOR_COLUMNS = (
    "ema_20",
    "ema_50",
    "rsi_14",
    "macd",
    "macd_signal",
    "macd_hist",
    "bb_upper",
    "bb_middle",
    "bb_lower",
    "atr_14",
    "zone_low",
    "zone_high",
    "zone_volume_share",
)
FEATURE_SCHEMA: dict[str, pl.DataType] = {
    "open_time": UTC_MS,
    **{name: pl.Float64() for name in (*CANDLE_COLUMNS[1:], *INDICATOR_COLUMNS)},
}
FEATURE_COLUMNS = tuple(FEATURE_SCHEMA)
ZONE_BINS = 24
ZONE_WINDOW_MIN = 20
ZONE_WINDOW_MAX = 240
# Candles of history a feature build reads before its first day (see features.compute).
LOOKBACK_CANDLES = 5_000
