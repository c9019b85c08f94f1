"""Isolated-margin liquidation on Binance USD-M: the notional brackets and the liquidation price.

Binance's formula for one position in one-way mode ("How to Calculate Liquidation
Price of USDⓈ-M Futures Contracts"), with the isolated-mode substitutions it states
(WB = the position's isolated wallet balance, TMM = 0, UPNL = 0):

    LP = (WB + cum − side·Q·EP) / (Q·MMR − side·Q)

side +1 long / −1 short, Q the quantity, EP the entry price, MMR and cum (the
"maintenance amount") those of the position's notional bracket. Binance's note on
brackets: when the notional at the liquidation price falls in another bracket than
the notional at entry, recompute with that bracket; `liquidation_price` does so.

The brackets are what GET /fapi/v1/leverageBracket returns per symbol (notionalFloor,
notionalCap, initialLeverage, maintMarginRatio, cum); `MarginBrackets.from_binance`
reads that response. The built-in table is BTCUSDT's, as Binance announced it for the
125x perpetual (2021-03-18, "Updates to Leverage and Margin Tiers"), with each cum
derived by Binance's rule cum_n = cum_{n-1} + floor_n × (MMR_n − MMR_{n-1}); Binance
changes tiers from time to time, so pass the current table for exact prices.
The bracket's maximum leverage (initialLeverage) is carried but not enforced.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit

# Relative tolerance of a bracket table's cum against Binance's cum rule (tables come as decimals).
_CUM_TOLERANCE = 1e-9


@dataclass(frozen=True)
class Bracket:
    """One notional tier: positions with floor < notional ≤ cap use its MMR and cum."""

    notional_floor: float
    notional_cap: float
    max_leverage: int
    maint_margin_ratio: float
    cum: float


@dataclass(frozen=True)
class MarginBrackets:
    """A symbol's bracket table, lowest notional first; validated to be contiguous and consistent."""

    symbol: str
    brackets: tuple[Bracket, ...]

    def __post_init__(self) -> None:
        if not self.brackets:
            raise ValueError(f"margin brackets of {self.symbol}: the table is empty")
        previous: Bracket | None = None
        for number, bracket in enumerate(self.brackets, start=1):
            where = f"margin brackets of {self.symbol}, bracket {number}"
            if not 0 <= bracket.notional_floor < bracket.notional_cap:
                raise ValueError(f"{where}: needs 0 <= notional_floor < notional_cap, got {bracket}")
            if not 0 < bracket.maint_margin_ratio < 1:
                raise ValueError(f"{where}: maint_margin_ratio must lie in (0, 1), got {bracket.maint_margin_ratio}")
            expected_floor = previous.notional_cap if previous else 0.0
            if bracket.notional_floor != expected_floor:
                raise ValueError(f"{where}: notional_floor {bracket.notional_floor} should be {expected_floor}")
            expected_cum = (
                previous.cum + bracket.notional_floor * (bracket.maint_margin_ratio - previous.maint_margin_ratio)
                if previous
                else 0.0
            )
            if not math.isclose(bracket.cum, expected_cum, rel_tol=_CUM_TOLERANCE, abs_tol=1e-6):
                raise ValueError(f"{where}: cum {bracket.cum} breaks Binance's rule, which gives {expected_cum}")
            previous = bracket

    @classmethod
    def from_binance(cls, response: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> MarginBrackets:
        """The table of one symbol from GET /fapi/v1/leverageBracket (the object, or a one-item list)."""
        item = response[0] if isinstance(response, Sequence) else response
        if isinstance(response, Sequence) and len(response) != 1:
            raise ValueError(f"expected the brackets of one symbol, got {len(response)} symbols")
        try:
            rows = sorted(item["brackets"], key=lambda row: float(row["notionalFloor"]))
            brackets = tuple(
                Bracket(
                    notional_floor=float(row["notionalFloor"]),
                    notional_cap=float(row["notionalCap"]),
                    max_leverage=int(row["initialLeverage"]),
                    maint_margin_ratio=float(row["maintMarginRatio"]),
                    cum=float(row["cum"]),
                )
                for row in rows
            )
            return cls(symbol=str(item["symbol"]), brackets=brackets)
        except KeyError as missing:
            raise ValueError(f"leverageBracket response lacks field {missing}") from None

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(floors, caps, MMRs, cums) as float64 arrays, the form the compiled engine reads."""
        columns = zip(
            *((b.notional_floor, b.notional_cap, b.maint_margin_ratio, b.cum) for b in self.brackets), strict=True
        )
        floors, caps, ratios, cums = (np.array(column, dtype=np.float64) for column in columns)
        for array in (floors, caps, ratios, cums):
            array.flags.writeable = False  # one array layout for numba, whoever calls
        return floors, caps, ratios, cums


def _btcusdt(rows: Sequence[tuple[float, float, int, float]]) -> MarginBrackets:
    """The table from (floor, cap, max leverage, MMR) rows, each cum by Binance's rule."""
    brackets: list[Bracket] = []
    for floor, cap, leverage, ratio in rows:
        cum = brackets[-1].cum + floor * (ratio - brackets[-1].maint_margin_ratio) if brackets else 0.0
        brackets.append(Bracket(floor, cap, leverage, ratio, round(cum, 6)))
    return MarginBrackets(symbol="BTCUSDT", brackets=tuple(brackets))


# BTCUSDT USD-M perpetual, Binance's 125x tiers (cum: 0, 50, 1 300, 16 300, 266 300, 1 266 300, ...).
BTCUSDT_BRACKETS = _btcusdt(
    [
        (0, 50_000, 125, 0.004),
        (50_000, 250_000, 100, 0.005),
        (250_000, 1_000_000, 50, 0.01),
        (1_000_000, 10_000_000, 20, 0.025),
        (10_000_000, 20_000_000, 10, 0.05),
        (20_000_000, 50_000_000, 5, 0.10),
        (50_000_000, 100_000_000, 4, 0.125),
        (100_000_000, 200_000_000, 3, 0.15),
        (200_000_000, 300_000_000, 2, 0.25),
        (300_000_000, 500_000_000, 1, 0.50),
    ]
)


@njit(cache=True)
def liquidation_price_nb(
    side: int,
    quantity: float,
    entry_price: float,
    wallet_balance: float,
    floors: np.ndarray,
    caps: np.ndarray,
    ratios: np.ndarray,
    cums: np.ndarray,
) -> float:
    """Binance's isolated LP; NaN when it is ≤ 0 (a long that no fall can liquidate).

    Tries each bracket and keeps the one that holds the notional at its own LP; when none
    does (a notional beyond the table at LP), the bracket of the entry notional decides.
    """
    entry_notional = quantity * entry_price
    fallback = math.nan
    for b in range(len(floors)):
        price = (wallet_balance + cums[b] - side * quantity * entry_price) / (quantity * ratios[b] - side * quantity)
        notional = quantity * price
        if floors[b] < notional <= caps[b]:
            return price if price > 0 else math.nan
        if floors[b] < entry_notional <= caps[b]:
            fallback = price
    if math.isnan(fallback):  # entry notional beyond the table: its last bracket
        b = len(floors) - 1
        fallback = (wallet_balance + cums[b] - side * quantity * entry_price) / (quantity * ratios[b] - side * quantity)
    return fallback if fallback > 0 else math.nan


def liquidation_price(
    side: int,
    quantity: float,
    entry_price: float,
    wallet_balance: float,
    brackets: MarginBrackets = BTCUSDT_BRACKETS,
) -> float | None:
    """The isolated position's liquidation price (the engine's own code); None when no price liquidates it.

    `side` +1 long / −1 short, `wallet_balance` the isolated margin (notional / leverage).
    """
    if side not in (1, -1):
        raise ValueError(f"side must be +1 (long) or -1 (short), got {side!r}")
    if not (quantity > 0 and entry_price > 0 and wallet_balance > 0):
        raise ValueError(
            f"quantity, entry_price and wallet_balance must be > 0, got {quantity}, {entry_price}, {wallet_balance}"
        )
    price = liquidation_price_nb(side, float(quantity), float(entry_price), float(wallet_balance), *brackets.arrays())
    return None if math.isnan(price) else price
