"""The paper broker: fills in full at the next available market price, with slippage and fee, and no exchange.

Its book (which client order ids it has filled, at what) lives in the TradingStore file, so a
resubmitted id returns the first fill and a restarted process resumes where the last one stopped.
Like an exchange, it is called outside the execution's transactions: the order is recorded as
pending before, and its outcome after.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable

from coin_platform.trading.orders import BrokerRejected, Fill, OrderRequest, OrderResult
from coin_platform.trading.positions import signed_quantity
from coin_platform.trading.store import TradingStore

# (symbol, time) -> (price, its time) of the first price at or after `time`, or None if there is none yet.
PriceSource = Callable[[str, dt.datetime], tuple[float, dt.datetime] | None]

# Binance's code for a reduce-only order that would not reduce the position.
REDUCE_ONLY_REJECTED = -2022


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class PaperBroker:
    """A Broker that simulates fills: buys pay price × (1 + slippage), sells get price × (1 − slippage),
    fee = fee_rate × fill notional. `clock` is the moment the order reaches the market."""

    name = "paper"

    def __init__(
        self,
        store: TradingStore,
        price_source: PriceSource,
        *,
        fee_rate: float,
        slippage_rate: float,
        clock: Callable[[], dt.datetime] = _utc_now,
    ) -> None:
        self.store = store
        self.price_source = price_source
        self.fee_rate = fee_rate
        self.slippage_rate = slippage_rate
        self.clock = clock

    def submit(self, order: OrderRequest) -> OrderResult:
        """Fill `order` once; the price is asked outside the store's lock (it may be a network call)."""
        if not (math.isfinite(order.quantity) and order.quantity > 0):
            raise BrokerRejected(f"{order.symbol} quantity must be positive, got {order.quantity!r}")
        with self.store.transaction() as tx:
            existing = tx.paper_order(order.client_order_id)
            if existing is not None:
                return existing
            if order.reduce_only:
                self._check_reduces(order, tx.position(order.symbol).quantity)
        asked_at = self.clock()
        quote = self.price_source(order.symbol, asked_at)
        if quote is None:
            raise BrokerRejected(
                f"no {order.symbol} price at or after {asked_at.isoformat()}; order {order.client_order_id} not filled"
            )
        market_price, priced_at = quote
        if not (math.isfinite(market_price) and market_price > 0):
            raise BrokerRejected(f"{order.symbol} price at {priced_at.isoformat()} is {market_price!r}")
        slippage = self.slippage_rate if order.side == "buy" else -self.slippage_rate
        price = market_price * (1 + slippage)
        fee = self.fee_rate * price * order.quantity
        fill = Fill(price=price, quantity=order.quantity, fee=fee, time=priced_at)
        exchange_order_id = f"paper-{order.client_order_id}"
        with self.store.transaction() as tx:
            existing = tx.paper_order(order.client_order_id)  # filled meanwhile by a concurrent submit
            if existing is not None:
                return existing
            if order.reduce_only:
                self._check_reduces(order, tx.position(order.symbol).quantity)
            tx.record_paper_order(order, exchange_order_id, fill)
        return OrderResult(
            client_order_id=order.client_order_id,
            exchange_order_id=exchange_order_id,
            broker=self.name,
            status="FILLED",
            fills=(fill,),
        )

    def lookup(self, order: OrderRequest) -> OrderResult | None:
        with self.store.transaction() as tx:
            return tx.paper_order(order.client_order_id)

    @staticmethod
    def _check_reduces(order: OrderRequest, position: float) -> None:
        change = signed_quantity(order.side, order.quantity)
        if position * change >= 0 or order.quantity > abs(position):
            raise BrokerRejected(
                f"reduce-only {order.side} {order.quantity:g} {order.symbol} would not reduce "
                f"the position {position:g}",
                code=REDUCE_ONLY_REJECTED,
            )
