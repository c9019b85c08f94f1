"""One decision in, at most one order out: the step `order_job` runs for every decision.

The store's lock is never held across a broker call (an exchange call can take minutes), so a
run is three steps. Transaction 1: the duplicate check, the order-time checks (configured
symbol / strategy / interval, decision age), the risk check against the position and the pending
orders, and the order recorded as PENDING; from then on it counts toward exposure and cooldown.
Then the broker call, with no lock. Transaction 2: the outcome (filled, rejected) and its fills.

Every decision is handled once: its id is the client order id, and a decision already in the
store (ordered, pending or refused) is not sent again. An order whose outcome the broker cannot
tell stays PENDING and fails the run with its id (so the run-failure alert fires); every later
run, and `reconcile_pending`, asks the broker about pending orders by client order id — a query
that never places — and settles them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from coin_platform.core.signals import SIDE_OF_SIGNAL
from coin_platform.events.schemas import Decision
from coin_platform.settings import PlatformConfig, TradingConfig
from coin_platform.trading.orders import Broker, BrokerRejected, OrderOutcomeUnknown, OrderRequest, OrderResult
from coin_platform.trading.positions import Position
from coin_platform.trading.risk import RiskGuard, RiskState
from coin_platform.trading.store import PENDING, StoreTransaction, TradingStore, TradingSummary

ExecutionStatus = Literal["filled", "hold", "duplicate", "risk_rejected", "broker_rejected", "no_position"]
_FINAL_WITHOUT_FILLS = ("REJECTED", "EXPIRED", "CANCELED")
# A decision's candle may close this far after `now` (clocks differ); later is a bogus decision.
_CLOCK_SKEW = dt.timedelta(seconds=60)
# A pending order the broker does not know is closed as never placed only after this long: longer than
# any broker call takes (Binance: about 205 s at worst), so an order still being sent is not closed.
NOT_PLACED_AFTER = dt.timedelta(minutes=10)


@dataclass(frozen=True)
class TradingScope:
    """What may be traded: the configured symbols, and the (strategy, interval) pairs enabled strategies evaluate."""

    symbols: frozenset[str]
    strategies: frozenset[tuple[str, str]]

    @classmethod
    def from_config(cls, config: PlatformConfig) -> TradingScope:
        pairs = {
            (strategy.name, interval)
            for strategy in config.strategies
            if strategy.enabled
            for interval in (strategy.intervals or config.intervals)
            if interval in config.intervals
        }
        return cls(frozenset(config.symbols), frozenset(pairs))

    def refusal(self, decision: Decision) -> str | None:
        """Why the decision is outside the configuration, or None."""
        if decision.symbol not in self.symbols:
            return f"symbol {decision.symbol} is not a configured symbol ({', '.join(sorted(self.symbols))})"
        if (decision.strategy, decision.interval) not in self.strategies:
            return f"strategy {decision.strategy} on {decision.interval} candles is not configured"
        return None


@dataclass(frozen=True)
class Reconciliation:
    """What asking the broker about one pending order found."""

    client_order_id: str
    symbol: str
    status: str  # what the broker says: PENDING (it cannot tell yet), FILLED, REJECTED (never placed), ...
    reason: str


@dataclass(frozen=True)
class Execution:
    decision_id: str
    status: ExecutionStatus
    reason: str
    order: OrderRequest | None  # the order intended (None for hold, duplicate, no_position)
    result: OrderResult | None  # what the broker returned (None unless it returned something)
    position: Position  # the symbol's position after this execution
    summary: TradingSummary  # the whole account after it, the symbol marked at its latest price
    reconciled: tuple[Reconciliation, ...] = ()  # pending orders this run asked the broker about


def execute_decision(
    decision: Decision,
    *,
    store: TradingStore,
    broker: Broker,
    config: TradingConfig,
    scope: TradingScope,
    now: dt.datetime,
) -> Execution:
    """Turn a decision into an order, or say why not.

    hold → nothing. enter_* → open or add `order_notional_usdt / decision.price` on the decision's side
    (against an opposite position it nets, as Binance's one-way mode does).
    exit_* → close the whole position in that direction, reduce-only; without one → no_position.
    A decision outside `scope` (rule not_configured) or older than `max_decision_age_seconds`
    (stale_decision) is refused before the risk guard; refusals and no_position are recorded as
    rejections, broker refusals as REJECTED orders, fills with their position change.
    Raises OrderOutcomeUnknown, naming the order, when the broker cannot say what happened; the order
    stays PENDING.
    """
    _check_inputs(decision, now)
    reconciled = tuple(reconcile_pending(store, broker, now)) if decision.action != "hold" else ()
    symbol = decision.symbol

    def finish(
        tx: StoreTransaction,
        status: ExecutionStatus,
        reason: str,
        order: OrderRequest | None = None,
        result: OrderResult | None = None,
    ) -> Execution:
        mark = (result.average_price if result else None) or decision.price
        position_after, summary = tx.position(symbol), tx.summary({symbol: mark})
        return Execution(decision.id, status, reason, order, result, position_after, summary, reconciled)

    with store.transaction() as tx:
        if decision.action == "hold":
            return finish(tx, "hold", f"decision is hold (confidence {decision.confidence:.2f}); nothing placed")
        previous = tx.previous_outcome(decision.id)
        if previous is not None:
            if tx.order_status(decision.id) == PENDING:
                raise OrderOutcomeUnknown(
                    f"order {decision.id} ({decision.symbol}) is still PENDING: {broker.name} could not say whether "
                    "it was placed; it is not sent again, later runs keep asking"
                )
            return finish(tx, "duplicate", f"decision {decision.id} was already handled: {previous}; nothing placed")

        refusal = _order_time_refusal(decision, config, scope, now)
        if refusal is not None:
            rule, reason = refusal
            tx.record_rejection(decision, rule=rule, reason=reason, created_at=now)
            return finish(tx, "risk_rejected", reason)

        position = tx.position(symbol)
        order = _intended_order(decision, position, config)
        if order is None:
            reason = f"{decision.signal}: no {symbol} position to close (position {position.quantity:g})"
            tx.record_rejection(decision, rule="no_position", reason=reason, created_at=now)
            return finish(tx, "no_position", reason)

        verdict = RiskGuard(config.risk).check(decision, order, position, _risk_state(tx, symbol, now), now)
        if not verdict.allowed:
            tx.record_rejection(decision, rule=verdict.rule, reason=verdict.reason, created_at=now)
            return finish(tx, "risk_rejected", verdict.reason, order)
        tx.record_pending(decision, order, broker=broker.name, created_at=now)

    try:
        result = broker.submit(order)  # no lock held: another run may trade meanwhile
    except BrokerRejected as exc:
        reason = f"{broker.name} rejected the order: {exc}"
        with store.transaction() as tx:
            tx.record_outcome(order, None, reason=reason)
            return finish(tx, "broker_rejected", reason, order)
    except OrderOutcomeUnknown as exc:
        raise OrderOutcomeUnknown(
            f"order {order.client_order_id} ({order.side} {order.quantity:g} {symbol}) is recorded as PENDING and "
            f"counts toward exposure and cooldown until a later run finds it on {broker.name}: {exc}"
        ) from exc

    if not result.fills and result.status not in _FINAL_WITHOUT_FILLS:
        # Accepted but not filled yet: it stays PENDING, and later runs ask again.
        raise OrderOutcomeUnknown(
            f"{broker.name} returned {result.status} with nothing filled for order {order.client_order_id}; "
            "it stays PENDING until a later run finds it filled"
        )
    with store.transaction() as tx:
        tx.record_outcome(order, result)  # False if a concurrent run's reconciliation recorded it first
        if not result.fills:
            reason = f"{broker.name} returned {result.status} with nothing filled"
            return finish(tx, "broker_rejected", reason, order, result)
        return finish(
            tx,
            "filled",
            f"{result.status}: {order.side} {result.filled_quantity:g} {symbol} at {result.average_price:g}, "
            f"fee {result.fees:.4f} USDT" + (" (already placed earlier)" if result.existing else ""),
            order,
            result,
        )


def reconcile_pending(store: TradingStore, broker: Broker, now: dt.datetime) -> list[Reconciliation]:
    """Ask `broker` about every pending order it placed (a query, never a send) and record what it says.

    Found filled or final → recorded, with fills and position. Not found → closed as REJECTED (never
    placed) once older than NOT_PLACED_AFTER. Otherwise, and when the broker cannot tell, it stays PENDING.
    """
    with store.transaction() as tx:
        pending = tx.pending_orders()
    outcomes = []
    for item in pending:
        order = item.order
        if item.broker != broker.name:
            reason = f"placed with the {item.broker} broker; this run's {broker.name} broker cannot ask about it"
            outcomes.append(Reconciliation(order.client_order_id, order.symbol, PENDING, reason))
            continue
        try:
            found = broker.lookup(order)
        except (OrderOutcomeUnknown, BrokerRejected) as exc:
            outcomes.append(Reconciliation(order.client_order_id, order.symbol, PENDING, f"still unknown: {exc}"))
            continue
        age = now - item.created_at
        if found is None and age < NOT_PLACED_AFTER:
            reason = f"not on the exchange {age.total_seconds():.0f} s after it was recorded; asked again later"
            outcomes.append(Reconciliation(order.client_order_id, order.symbol, PENDING, reason))
            continue
        if found is not None and not found.fills and found.status not in _FINAL_WITHOUT_FILLS:
            reason = f"{broker.name} shows it {found.status} with nothing filled yet"
            outcomes.append(Reconciliation(order.client_order_id, order.symbol, PENDING, reason))
            continue
        if found is None:
            reason = f"never placed: {broker.name} has no such order {age.total_seconds():.0f} s after it was recorded"
        else:
            reason = f"reconciled: {broker.name} shows it {found.status}, {found.filled_quantity:g} filled"
        with store.transaction() as tx:
            if not tx.record_outcome(order, found, reason=reason):
                reason += " (already recorded by another run)"
        status = found.status if found else "REJECTED"
        outcomes.append(Reconciliation(order.client_order_id, order.symbol, status, reason))
    return outcomes


def _order_time_refusal(
    decision: Decision, config: TradingConfig, scope: TradingScope, now: dt.datetime
) -> tuple[str, str] | None:
    """(rule, reason) when the decision must not become an order whatever the risk: unknown to the config, or stale."""
    if (outside := scope.refusal(decision)) is not None:
        return "not_configured", f"not_configured: {outside}; not sent"
    age = (now - decision.candle_close_time).total_seconds()
    if decision.candle_close_time > now + _CLOCK_SKEW:
        return "stale_decision", (
            f"stale_decision: its candle closes {-age:.0f} s after the order time "
            f"({decision.candle_close_time.isoformat()}); not sent"
        )
    if age > config.max_decision_age_seconds:
        return "stale_decision", (
            f"stale_decision: its candle closed {age:.0f} s before the order "
            f"({decision.candle_close_time.isoformat()}), above trading.max_decision_age_seconds "
            f"({config.max_decision_age_seconds} s); not sent"
        )
    return None


def _check_inputs(decision: Decision, now: dt.datetime) -> None:
    if now.tzinfo is None:
        raise ValueError(f"now must be timezone-aware (UTC), got {now.isoformat()}")
    side = SIDE_OF_SIGNAL[decision.signal]
    if decision.action not in ("hold", side):
        raise ValueError(f"decision {decision.id}: action {decision.action!r} contradicts {decision.signal} ({side})")


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
        pending_quantity=tx.pending_quantity(symbol),
    )
