"""Indicators as polars expressions.

``ema``, ``sma``, ``rsi``, ``macd``, ``bollinger`` and ``atr`` are TA-Lib itself
(the PyPI ``ta-lib`` wheel) behind a polars expression API: values are TA-Lib's,
with null where TA-Lib has NaN. ``volume_zones`` (volume-by-price) is hand-written
numpy because no library provides it.

Every function takes column names or expressions and returns a ``pl.Expr``::

    df.with_columns(
        rsi("close", 14).over("symbol"),
        macd(pl.col("close")).over("symbol"),          # struct {macd, signal, hist}
        bollinger("close", 20, 2.0).over("symbol"),   # struct {upper, middle, lower}
        atr("high", "low", "close", 14).over("symbol"),
        volume_zones("close", "volume", window=240, bins=24).over("symbol"),
    )

Rows must be sorted by time within each symbol (symbols may be interleaved);
``.over("symbol")`` computes each symbol on its own rows and keeps the frame's
row order. Without ``.over`` the whole column is treated as one series.
"""

from coin_platform.indicators.talib_exprs import (
    BOLLINGER_FIELDS,
    MACD_FIELDS,
    atr,
    bollinger,
    ema,
    macd,
    rsi,
    sma,
)
from coin_platform.indicators.volume_zones import (
    VOLUME_ZONE_FIELDS,
    volume_zone_arrays,
    volume_zones,
)

__all__ = [
    "BOLLINGER_FIELDS",
    "MACD_FIELDS",
    "VOLUME_ZONE_FIELDS",
    "atr",
    "bollinger",
    "ema",
    "macd",
    "rsi",
    "sma",
    "volume_zone_arrays",
    "volume_zones",
]
