"""Volume-by-price zones over a trailing window (hand-written: no TA library has them).

For every row ``t`` the trailing window is rows ``t - window + 1 .. t`` (the
current candle included, nothing after it). The window's price range
``[min(price), max(price)]`` is cut into ``bins`` equal zones ``[low, high)`` (the
top one closed); each candle's volume goes to the zone holding its price (a price
on an edge, within 1e-9 of a zone width, goes to the upper zone); the zone with the most volume wins
(ties go to the lower zone). The result is a struct

    zone_low, zone_high      the winning zone's price bounds
    zone_volume_share        its volume / the window's total volume (0..1]

A volume-zone breakout compares a candle with the zone built *before* it, e.g.
``close > zone_high.shift(1)`` and ``volume > volume.shift(1)`` (per symbol, with
``.over("symbol")``), because the row's own zone already contains that candle.

Rows are null while the window is not full, when any price or volume in the
window is null/NaN, and when the window traded no volume. If every price in the
window is equal, the zone is that single price (zone_low == zone_high) with share 1.
Rows must be sorted by time within each symbol.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from coin_platform.indicators.talib_exprs import IntoExpr, _as_float_array, _col

VOLUME_ZONE_FIELDS = ("zone_low", "zone_high", "zone_volume_share")

# Rows per chunk are chosen so one chunk holds about this many window elements.
_CHUNK_ELEMENTS = 1 << 21
# Fraction of a zone width within which a price counts as sitting on the zone's lower edge.
_EDGE_TOLERANCE = 1e-9


def volume_zone_arrays(
    price: np.ndarray, volume: np.ndarray, window: int, bins: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """numpy core: (zone_low, zone_high, zone_volume_share), NaN where undefined."""
    price = np.asarray(price, dtype=np.float64)
    volume = np.asarray(volume, dtype=np.float64)
    if price.shape != volume.shape or price.ndim != 1:
        raise ValueError("price and volume must be 1-d arrays of the same length")
    n = len(price)
    low = np.full(n, np.nan)
    high = np.full(n, np.nan)
    share = np.full(n, np.nan)
    if n < window:
        return low, high, share

    prices = np.lib.stride_tricks.sliding_window_view(price, window)  # row j -> output row j + window - 1
    volumes = np.lib.stride_tricks.sliding_window_view(volume, window)
    step = max(1, _CHUNK_ELEMENTS // window)
    for start in range(0, len(prices), step):
        p = prices[start : start + step]
        v = volumes[start : start + step]
        rows = len(p)
        lo = p.min(axis=1)
        hi = p.max(axis=1)
        span = hi - lo
        width = span / bins
        safe_span = np.where(span > 0, span, 1.0)
        # A price on a zone edge (common with tick-grid prices) belongs to the upper zone;
        # _EDGE_TOLERANCE absorbs the rounding of (p - lo) in binary floating point.
        zone = np.floor((p - lo[:, None]) / safe_span[:, None] * bins + _EDGE_TOLERANCE)
        zone = np.clip(np.nan_to_num(zone, nan=0.0), 0, bins - 1).astype(np.int64)
        flat = (np.arange(rows, dtype=np.int64)[:, None] * bins + zone).ravel()
        clean_v = np.nan_to_num(v, nan=0.0).ravel()
        per_zone = np.bincount(flat, weights=clean_v, minlength=rows * bins).reshape(rows, bins)
        best = per_zone.argmax(axis=1)
        total = v.sum(axis=1)  # NaN if any volume is NaN
        best_volume = per_zone[np.arange(rows), best]
        ok = np.isfinite(lo) & np.isfinite(hi) & np.isfinite(total) & (total > 0)
        zone_low = np.where(width > 0, lo + best * width, lo)
        zone_high = np.where(width > 0, lo + (best + 1) * width, hi)
        zone_high = np.where(best == bins - 1, hi, zone_high)  # the top zone ends exactly at the max
        out = slice(start + window - 1, start + window - 1 + rows)
        with np.errstate(invalid="ignore", divide="ignore"):
            low[out] = np.where(ok, zone_low, np.nan)
            high[out] = np.where(ok, zone_high, np.nan)
            share[out] = np.where(ok, best_volume / total, np.nan)
    return low, high, share


def volume_zones(price: IntoExpr, volume: IntoExpr, window: int, bins: int = 24) -> pl.Expr:
    """Highest-volume price zone of the trailing `window` candles, as a struct.

    Fields: zone_low, zone_high, zone_volume_share (see the module docstring).
    Use ``.over("symbol")`` on a long frame; rows must be time-sorted per symbol.
    """
    if not isinstance(window, int) or isinstance(window, bool) or window < 1:
        raise ValueError(f"window must be an integer >= 1, got {window!r}")
    if not isinstance(bins, int) or isinstance(bins, bool) or bins < 1:
        raise ValueError(f"bins must be an integer >= 1, got {bins!r}")

    def apply(series: pl.Series) -> pl.Series:
        frame = series.struct.unnest()
        result = volume_zone_arrays(
            _as_float_array(frame.get_column("price")),
            _as_float_array(frame.get_column("volume")),
            window,
            bins,
        )
        columns = [
            pl.Series(name, values, nan_to_null=True) for name, values in zip(VOLUME_ZONE_FIELDS, result, strict=True)
        ]
        return pl.DataFrame(columns).to_struct(series.name)

    dtype = pl.Struct({field: pl.Float64 for field in VOLUME_ZONE_FIELDS})
    packed = pl.struct(_col(price).alias("price"), _col(volume).alias("volume"))
    return packed.map_batches(apply, return_dtype=dtype).alias(f"volume_zones_{window}_{bins}")
