"""Indicator features per candle: `compute_features`, pure (polars, coin_platform.indicators).

The feature set is `features.schema.FEATURE_SCHEMA`:

    open_time, close, volume                  the candle
    ema_20, ema_50                            TA-Lib EMA (seeded with the SMA of the first N closes)
    rsi_14                                    TA-Lib RSI (Wilder)
    macd, macd_signal, macd_hist              TA-Lib MACD 12/26/9
    bb_upper, bb_middle, bb_lower             TA-Lib Bollinger 20, 2σ
    atr_14                                    TA-Lib ATR (Wilder)
    zone_low, zone_high, zone_volume_share    volume-by-price zone, 24 bins, over the trailing
                                              `zone_window(interval)` candles

Exactness
---------
EMA, RSI, MACD and ATR are recursive: a candle's value depends on every candle
since the series began. A build reads `LOOKBACK_CANDLES` candles before its first
day (or from `config.history_start` when that is nearer): the seed's weight decays
geometrically, (49/51)**5000 ≈ 1e-87 for the slowest EMA, so the values equal
those of one computation over the whole history while a build reads a bounded
range (equal to 1e-12 relative: TA-Lib's running sums, as in Bollinger, round a
little differently from another start). Nothing after the day is loaded and every indicator is causal, so a day's
values never change when later days arrive; they do change when earlier history
changes (a re-ingested day), and then the later feature days must be rebuilt.

Volume zones are a pure trailing window (no recursion), so they are computed
only over the requested rows plus `window - 1` rows before them; the values
equal those of a full-history computation.

Warm-up: rows at the very beginning of history are null until an indicator has
enough candles (ema_20: 19 rows, ema_50: 49, rsi_14/atr_14: 14, macd: 33,
bb: 19, zones: window - 1). Nulls are nulls, never NaN.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from coin_platform.core.intervals import DAY_MS, interval_ms, normalize_interval
from coin_platform.core.time import UTC_MS
from coin_platform.features.schema import (
    FEATURE_SCHEMA,
    LOOKBACK_CANDLES,
    ZONE_BINS,
    ZONE_WINDOW_MAX,
    ZONE_WINDOW_MIN,
)
from coin_platform.indicators import atr, bollinger, ema, macd, rsi, volume_zones


def lookback_days(interval: str, lookback_candles: int = LOOKBACK_CANDLES) -> int:
    """Whole UTC days before a day that its look-back reaches into: the days whose
    repair changes this day's features (1m -> 4, 15m -> 53, 1h -> 209)."""
    per_day = DAY_MS // interval_ms(interval)
    return -(-lookback_candles // per_day)


def zone_window(interval: str) -> int:
    """Candles in the volume-zone window: one UTC day of candles, kept within 20..240.

    1m -> 240 (4 hours), 15m -> 96 (1 day), 1h -> 24 (1 day), 4h/1d -> 20.
    """
    per_day = DAY_MS // interval_ms(interval)
    return max(ZONE_WINDOW_MIN, min(ZONE_WINDOW_MAX, per_day))


def compute_features(
    candles: pl.DataFrame, interval: str | None = None, *, since: dt.datetime | None = None
) -> pl.DataFrame:
    """Features of every candle (or of those opening at/after `since`), computed over all rows given.

    `candles` has open_time (or the loader's `timestamp`), high, low, close, volume and
    optionally symbol (then each symbol is its own series; rows may interleave but must be
    time-sorted per symbol). `interval` defaults to the loader's `timeframe` column.
    The result is `symbol` (when given) + FEATURE_COLUMNS, in the input's row order.
    The rows passed are the history: pass everything from the start of history so the
    recursive indicators match (see the module docstring).
    """
    frame = candles
    if "open_time" not in frame.columns and "timestamp" in frame.columns:
        frame = frame.rename({"timestamp": "open_time"})
    if interval is None:
        if "timeframe" not in frame.columns or frame["timeframe"].n_unique() != 1:
            raise ValueError("pass `interval`: candles have no single `timeframe`")
        interval = str(frame["timeframe"][0])
    interval = normalize_interval(interval)
    has_symbol = "symbol" in frame.columns
    if not has_symbol:
        frame = frame.with_columns(symbol=pl.lit(""))
    window = zone_window(interval)
    frame = frame.select(
        "symbol",
        pl.col("open_time").cast(UTC_MS),
        *[pl.col(c).cast(pl.Float64) for c in ("high", "low", "close", "volume")],
    )
    by = "symbol"
    frame = frame.with_columns(
        ema("close", 20).over(by).alias("ema_20"),
        ema("close", 50).over(by).alias("ema_50"),
        rsi("close", 14).over(by).alias("rsi_14"),
        macd("close", 12, 26, 9).over(by).alias("_macd"),
        bollinger("close", 20, 2.0).over(by).alias("_bb"),
        atr("high", "low", "close", 14).over(by).alias("atr_14"),
        _row=pl.int_range(pl.len()).over(by),
        _first=((pl.col("open_time") < since).sum().over(by) if since is not None else pl.lit(0, pl.UInt32)).cast(
            pl.Int64
        ),
    )
    # Volume zones only need `window - 1` rows of look-back before the first wanted row.
    frame = frame.filter(pl.col("_row") >= pl.col("_first") - (window - 1))
    frame = frame.with_columns(
        volume_zones("close", "volume", window=window, bins=ZONE_BINS).over(by).alias("_zones")
    ).filter(pl.col("_row") >= pl.col("_first"))
    out = frame.select(
        "symbol",
        "open_time",
        "close",
        "volume",
        "ema_20",
        "ema_50",
        "rsi_14",
        pl.col("_macd").struct.field("macd").alias("macd"),
        pl.col("_macd").struct.field("signal").alias("macd_signal"),
        pl.col("_macd").struct.field("hist").alias("macd_hist"),
        pl.col("_bb").struct.field("upper").alias("bb_upper"),
        pl.col("_bb").struct.field("middle").alias("bb_middle"),
        pl.col("_bb").struct.field("lower").alias("bb_lower"),
        "atr_14",
        pl.col("_zones").struct.field("zone_low").alias("zone_low"),
        pl.col("_zones").struct.field("zone_high").alias("zone_high"),
        pl.col("_zones").struct.field("zone_volume_share").alias("zone_volume_share"),
    ).cast(FEATURE_SCHEMA)  # type: ignore[arg-type]
    return out if has_symbol else out.drop("symbol")
