"""Kline intervals as Binance spells them, and their lengths."""

from __future__ import annotations

INTERVAL_MS: dict[str, int] = {
    "1m": 60_000,
    "3m": 3 * 60_000,
    "5m": 5 * 60_000,
    "15m": 15 * 60_000,
    "30m": 30 * 60_000,
    "1h": 3_600_000,
    "2h": 2 * 3_600_000,
    "4h": 4 * 3_600_000,
    "6h": 6 * 3_600_000,
    "8h": 8 * 3_600_000,
    "12h": 12 * 3_600_000,
    "1d": 86_400_000,
}
# The intervals the platform ingests and stores.
SUPPORTED_INTERVALS: tuple[str, ...] = ("1m", "15m", "1h")
DAY_MS = 86_400_000


class UnknownIntervalError(ValueError):
    """An interval that Binance does not know (or that the platform does not serve)."""


def normalize_interval(text: str) -> str:
    """`1M`/`15M`/`1H` (coin_hts spelling) or `1m`/`15m`/`1h` -> Binance spelling.

    Monthly `1M` candles are not supported, so upper-case M always means minutes.
    """
    interval = str(text).strip().lower()
    if interval not in INTERVAL_MS:
        raise UnknownIntervalError(
            f"unknown interval {text!r}; expected one of {', '.join(INTERVAL_MS)}"
        )
    return interval


def interval_ms(interval: str) -> int:
    return INTERVAL_MS[normalize_interval(interval)]
