"""Position accounting for one symbol: a signed quantity, its average entry and what it has realized.

One-way (netting) mode, as Binance USD-M runs by default: a buy adds to a long or reduces a short,
and a fill larger than the position closes it and opens the remainder the other way at the fill price.
Fees are charged when they are paid, so realized PnL is net of every fee, opening fees included.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

# A position this much smaller than the quantities that produced it is float residue, i.e. flat.
_RELATIVE_DUST = 1e-12


@dataclass(frozen=True)
class Position:
    symbol: str
    quantity: float = 0.0  # signed: + long, - short
    entry_price: float = 0.0  # average entry of the open quantity; 0 when flat
    realized_pnl: float = 0.0  # USDT, net of fees
    fees_paid: float = 0.0  # USDT, already inside realized_pnl; kept apart for reporting

    @property
    def direction(self) -> Literal["long", "short", "flat"]:
        return "long" if self.quantity > 0 else "short" if self.quantity < 0 else "flat"

    def notional(self, mark_price: float) -> float:
        return abs(self.quantity) * mark_price

    def unrealized_pnl(self, mark_price: float) -> float:
        """What closing the open quantity at `mark_price` would realize, before the closing fee."""
        return self.quantity * (mark_price - self.entry_price)


@dataclass(frozen=True)
class FillEffect:
    position: Position
    realized_pnl: float  # this fill's contribution: closed quantity × price move − its fee


def signed_quantity(side: Literal["buy", "sell"], quantity: float) -> float:
    if side not in ("buy", "sell"):
        raise ValueError(f"side must be 'buy' or 'sell', not {side!r}")
    return quantity if side == "buy" else -quantity


def apply_fill(
    position: Position, side: Literal["buy", "sell"], quantity: float, price: float, fee: float
) -> FillEffect:
    """The position after one fill: open, add (weighted entry), reduce, close or flip through zero."""
    for name, value in (("quantity", quantity), ("price", price)):
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"fill {name} must be a positive number, got {value!r}")
    if not (math.isfinite(fee) and fee >= 0):
        raise ValueError(f"fill fee must be a non-negative number, got {fee!r}")

    before = position.quantity
    change = signed_quantity(side, quantity)
    after = before + change
    if abs(after) <= _RELATIVE_DUST * max(abs(before), quantity):
        after = 0.0

    if before == 0 or (before > 0) == (change > 0):
        closed = 0.0
        entry = (abs(before) * position.entry_price + quantity * price) / abs(after)
    else:
        closed = min(quantity, abs(before))
        if after == 0:
            entry = 0.0
        elif (after > 0) == (before > 0):
            entry = position.entry_price
        else:
            entry = price  # flipped: what is left was opened by this fill
    gross = closed * (price - position.entry_price) * (1.0 if before > 0 else -1.0)
    realized = gross - fee
    return FillEffect(
        position=replace(
            position,
            quantity=after,
            entry_price=entry,
            realized_pnl=position.realized_pnl + realized,
            fees_paid=position.fees_paid + fee,
        ),
        realized_pnl=realized,
    )
