"""What every broker takes and returns, so the order job does not care which one runs.

The client order id is the decision id: a broker that already knows the id returns the
order it has instead of placing a second one.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal, Protocol

OrderStatus = Literal["FILLED", "PARTIALLY_FILLED", "NEW", "REJECTED", "EXPIRED", "CANCELED"]


class BrokerRejected(RuntimeError):
    """The broker refused the order (the message carries its code and reason); nothing was placed."""

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class OrderOutcomeUnknown(RuntimeError):
    """The broker could not say whether the order was placed (e.g. Binance 503 after a query)."""


@dataclass(frozen=True)
class OrderRequest:
    client_order_id: str  # the decision id
    symbol: str
    side: Literal["buy", "sell"]
    quantity: float
    reduce_only: bool
    reference_price: float  # the price the decision saw; paper fills start from the next available one


@dataclass(frozen=True)
class Fill:
    price: float
    quantity: float
    fee: float  # in quote currency (USDT)
    time: dt.datetime


@dataclass(frozen=True)
class OrderResult:
    client_order_id: str
    exchange_order_id: str
    broker: str
    status: OrderStatus
    fills: tuple[Fill, ...] = field(default_factory=tuple)
    # True when the broker already had this client order id and returned the existing order.
    existing: bool = False

    @property
    def filled_quantity(self) -> float:
        return sum(f.quantity for f in self.fills)

    @property
    def average_price(self) -> float | None:
        quantity = self.filled_quantity
        return sum(f.price * f.quantity for f in self.fills) / quantity if quantity else None

    @property
    def fees(self) -> float:
        return sum(f.fee for f in self.fills)


class Broker(Protocol):
    name: str

    def submit(self, order: OrderRequest) -> OrderResult:
        """Place the order once (idempotent on client_order_id). Raises BrokerRejected or
        OrderOutcomeUnknown; never returns a result it is not sure of."""
        ...

    def lookup(self, order: OrderRequest) -> OrderResult | None:
        """The order the broker holds under `order.client_order_id`, or None if it has none; never places one.
        Raises OrderOutcomeUnknown when it cannot tell."""
        ...
