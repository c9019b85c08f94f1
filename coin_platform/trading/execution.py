"""One decision in, at most one order out: the step `order_job` runs for every decision.

Everything happens inside one TradingStore transaction (which holds the store's file lock), so
the duplicate check, the risk check against the current position and the record of what happened
cannot interleave with another run, and nothing is half-written. Every decision is handled once:
its id is the client order id, and a decision already in the store (ordered or refused) is a
duplicate. `OrderOutcomeUnknown` is not caught: the run fails, nothing is recorded, and its retry
resubmits the same client order id, which the broker answers with the order it already has.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Literal

from coin_platform.events.schemas import SIDE_OF_SIGNAL, Decision
from coin_platform.settings import TradingConfig
from coin_platform.trading.orders import Broker, BrokerRejected, OrderOutcomeUnknown, OrderRequest, OrderResult
from coin_platform.trading.positions import Position
from coin_platform.trading.risk import RiskGuard, RiskState
from coin_platform.trading.store import StoreTransaction, TradingStore, TradingSummary

ExecutionStatus = Literal["filled", "hold", "duplicate", "risk_rejected", "broker_rejected", "no_position"]
_FINAL_WITHOUT_FILLS = ("REJECTED", "EXPIRED", "CANCELED")


@dataclass(frozen=True)
class Execution:
    decision_id: str
    status: ExecutionStatus
    reason: str
    order: OrderRequest | None  # the order intended (None for hold, duplicate, no_position)
    result: OrderResult | None  # what the broker returned (None unless it returned something)
    position: Position  # the symbol's position after this execution
    summary: TradingSummary  # the whole account after it, the symbol marked at its latest price


def execute_decision(
    decision: Decision,
    *,
    store: TradingStore,
    broker: Broker,
    config: TradingConfig,
    now: dt.datetime,
) -> Execution:
    """Turn a decision into an order, or say why not.

    hold → nothing. enter_* → open or add `order_notional_usdt / decision.price` on the decision's side
    (against an opposite position it nets, as Binance's one-way mode does).
    exit_* → close the whole position in that direction, reduce-only; without one → no_position.
    The risk guard sees the order before the broker; its refusals and no_position are recorded as
    rejections, broker refusals as REJECTED orders, fills with their position change.
    """
    _check_inputs(decision, now)
    symbol = decision.symbol
    with store.transaction() as tx:

        def finish(
            status: ExecutionStatus,
            reason: str,
            order: OrderRequest | None = None,
            result: OrderResult | None = None,
        ) -> Execution:
            mark = (result.average_price if result else None) or decision.price
            position_after, summary = tx.position(symbol), tx.summary({symbol: mark})
            return Execution(decision.id, status, reason, order, result, position_after, summary)

        if decision.action == "hold":
            return finish("hold", f"decision is hold (confidence {decision.confidence:.2f}); nothing placed")
        previous = tx.previous_outcome(decision.id)
        if previous is not None:
            return finish("duplicate", f"decision {decision.id} was already handled: {previous}; nothing placed")

        position = tx.position(symbol)
        order = _intended_order(decision, position, config)
        if order is None:
            reason = f"{decision.signal}: no {symbol} position to close (position {position.quantity:g})"
            tx.record_rejection(decision, rule="no_position", reason=reason, created_at=now)
            return finish("no_position", reason)

        verdict = RiskGuard(config.risk).check(decision, order, position, _risk_state(tx, symbol, now), now)
        if not verdict.allowed:
            tx.record_rejection(decision, rule=verdict.rule, reason=verdict.reason, created_at=now)
            return finish("risk_rejected", verdict.reason, order)

        try:
            result = broker.submit(order)
        except BrokerRejected as exc:
            reason = f"{broker.name} rejected the order: {exc}"
            tx.record_order(decision, order, broker=broker.name, created_at=now, reason=reason)
            return finish("broker_rejected", reason, order)

        if not result.fills and result.status not in _FINAL_WITHOUT_FILLS:
            # Accepted but not filled yet: recording it would leave the position wrong. Fail the run;
            # the retry asks the broker again under the same client order id.
            raise OrderOutcomeUnknown(
                f"{broker.name} returned {result.status} with nothing filled for order {order.client_order_id}"
            )
        tx.record_order(decision, order, broker=broker.name, created_at=now, result=result)
        for seq, fill in enumerate(result.fills):
            tx.record_fill(order, seq, fill)
        if not result.fills:
            reason = f"{broker.name} returned {result.status} with nothing filled"
            return finish("broker_rejected", reason, order, result)
        return finish(
            "filled",
            f"{result.status}: {order.side} {result.filled_quantity:g} {symbol} at {result.average_price:g}, "
            f"fee {result.fees:.4f} USDT" + (" (already placed earlier)" if result.existing else ""),
            order,
            result,
        )


def _check_inputs(decision: Decision, now: dt.datetime) -> None:
    if now.tzinfo is None:
        raise ValueError(f"now must be timezone-aware (UTC), got {now.isoformat()}")
    side = SIDE_OF_SIGNAL[decision.signal]
    if decision.action not in ("hold", side):
        raise ValueError(f"decision {decision.id}: action {decision.action!r} contradicts {decision.signal} ({side})")
    if not (math.isfinite(decision.price) and decision.price > 0):
        raise ValueError(f"decision {decision.id}: price must be a positive number, got {decision.price!r}")


def _intended_order(decision: Decision, position: Position, config: TradingConfig) -> OrderRequest | None:
    if decision.signal.startswith("enter_"):
        quantity, reduce_only = config.order_notional_usdt / decision.price, False
    else:
        closes = "long" if decision.signal == "exit_long" else "short"
        if position.direction != closes:
            return None
        quantity, reduce_only = abs(position.quantity), True
    return OrderRequest(
        client_order_id=decision.id,
        symbol=decision.symbol,
        side=decision.action,
        quantity=quantity,
        reduce_only=reduce_only,
        reference_price=decision.price,
    )


def _risk_state(tx: StoreTransaction, symbol: str, now: dt.datetime) -> RiskState:
    day_start = now.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return RiskState(
        realized_pnl_today=tx.realized_pnl_between(day_start, day_start + dt.timedelta(days=1)),
        last_order_at=tx.last_order_at(symbol),
    )
