"""What a Binance USD-M symbol looks like: upper-case letters and digits (BTCUSDT, 1000PEPEUSDT)."""

from __future__ import annotations

import re

BINANCE_SYMBOL = re.compile(r"^[A-Z0-9]{2,30}$")


def is_binance_symbol(text: str) -> bool:
    return bool(BINANCE_SYMBOL.fullmatch(text))
