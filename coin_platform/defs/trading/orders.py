"""Placing orders: `place_order` (what trade_job does after deciding), `order_job` (one decision given as a
message, e.g. from a model outside the platform), and the reconcile job and its schedule.

coin_platform.trading.execution checks, records and places the order; the order, its fills and
the position are recorded in the trading store and reported as `orders` and `positions` asset
materializations, so the UI shows every order and the current book. A run whose order outcome
stays unknown fails with the order id, so run_failure_alert_sensor reports it; each run first
settles such pending orders and logs what it found. `reconcile_orders_job` does the same every
few minutes on its own, so a pending order is settled even when no later decision comes, and it
fails (and alerts) for as long as an order's outcome stays unknown.
"""

import contextlib
import datetime as dt
import logging
from collections.abc import Iterator

import dagster as dg

from coin_platform.defs.events import MessageConfig
from coin_platform.defs.resources import BinanceResource, TradingDesk
from coin_platform.defs.trading.assets import ORDERS_ASSET, POSITIONS_ASSET
from coin_platform.events.schemas import Decision
from coin_platform.events.trace_ids import decision_ids
from coin_platform.ops.logs import ORDER_FILLED, ORDER_RECORDED, log_event
from coin_platform.settings import Settings
from coin_platform.trading.execution import Execution, TradingScope, execute_decision, reconcile_pending
from coin_platform.trading.orders import Broker
from coin_platform.trading.store import PENDING, TradingStore

ORDER_OP = "execute_decision"
RECONCILE_EVERY_MINUTES = 5


def _table(frame) -> str:
    if frame.is_empty():
        return "none"
    return frame.to_pandas().to_markdown(index=False)


@contextlib.contextmanager
def _broker(desk: TradingDesk, binance: BinanceResource, store: TradingStore) -> Iterator[Broker]:
    """The desk's broker for one run; the paper broker prices at the market client's last trade."""
    market = binance.get_client()
    try:
        yield desk.get_broker(store, lambda symbol, _at: market.last_price(symbol))
    finally:
        market.close()


def _log_reconciled(context: dg.OpExecutionContext, reconciled) -> None:
    for item in reconciled:
        log = context.log.warning if item.status == PENDING else context.log.info
        log(f"pending order {item.client_order_id} ({item.symbol}): {item.status}: {item.reason}")


def build_reconcile_job() -> tuple[dg.JobDefinition, dg.ScheduleDefinition]:
    """Settle pending orders by asking the broker (a query by client order id, never a send)."""

    @dg.op(name="reconcile_pending_orders")
    def reconcile_orders(
        context: dg.OpExecutionContext, trading_store: dg.ResourceParam[TradingDesk], binance: BinanceResource
    ) -> None:
        store = trading_store.get_store()
        with store.transaction() as tx:
            if not tx.pending_orders():
                context.log.info("no pending orders")
                return
        with _broker(trading_store, binance, store) as broker:
            reconciled = reconcile_pending(store, broker, dt.datetime.now(dt.UTC))
        _log_reconciled(context, reconciled)
        if unknown := [item.client_order_id for item in reconciled if item.status == PENDING]:
            raise dg.Failure(
                f"{len(unknown)} order(s) with an unknown outcome after asking {broker.name}: {', '.join(unknown)}",
                metadata={"pending_orders": unknown},
            )

    @dg.job(
        name="reconcile_orders_job",
        description="Ask the broker about orders recorded as pending (outcome unknown) and record what it says; "
        "fails while any stays unknown, so the failure alert repeats until someone looks.",
        executor_def=dg.in_process_executor,
    )
    def reconcile_orders_job() -> None:
        reconcile_orders()

    schedule = dg.ScheduleDefinition(
        name="reconcile_orders_schedule",
        job=reconcile_orders_job,
        cron_schedule=f"*/{RECONCILE_EVERY_MINUTES} * * * *",
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Settles pending orders every {RECONCILE_EVERY_MINUTES} minutes.",
    )
    return reconcile_orders_job, schedule


def place_order(
    context: dg.OpExecutionContext, decision: Decision, settings: Settings, desk: TradingDesk, binance: BinanceResource
) -> Execution:
    """Execute one decision with the environment's broker, log the outcome and report `orders` and `positions`."""
    store = desk.get_store()
    with _broker(desk, binance, store) as broker:
        execution = execute_decision(
            decision,
            store=store,
            broker=broker,
            config=settings.config.trading,
            scope=TradingScope.from_config(settings.config),
            now=dt.datetime.now(dt.UTC),
        )
    _log_reconciled(context, execution.reconciled)
    summary = execution.summary
    result = execution.result
    refused = execution.status in ("risk_rejected", "broker_rejected")
    log_event(
        context.log,
        ORDER_RECORDED,
        f"decision {decision.id} ({decision.action} {decision.symbol}): {execution.status}: {execution.reason}",
        level=logging.WARNING if refused else logging.INFO,
        **decision_ids(decision),
        status=execution.status,
        broker=broker.name,
    )
    if result is not None and result.filled_quantity > 0:
        log_event(
            context.log,
            ORDER_FILLED,
            f"order {decision.id} filled {result.filled_quantity:g} {decision.symbol} at {result.average_price:g}",
            **decision_ids(decision),
            filled_quantity=result.filled_quantity,
            average_price=result.average_price,
            fees=result.fees,
            filled_at=result.fills[-1].time if result.fills else None,
        )
    context.log_event(
        dg.AssetMaterialization(
            ORDERS_ASSET,
            description=f"{execution.status}: {execution.reason}",
            metadata={
                "decision_id": decision.id,
                "symbol": decision.symbol,
                "action": decision.action,
                "signal": decision.signal,
                "strategy": decision.strategy,
                "status": execution.status,
                "reason": execution.reason,
                "broker": broker.name,
                "quantity": execution.order.quantity if execution.order else 0.0,
                "filled_quantity": result.filled_quantity if result else 0.0,
                "average_price": (result.average_price or 0.0) if result else 0.0,
                "fees": result.fees if result else 0.0,
                "exchange_order_id": result.exchange_order_id if result else "",
            },
        )
    )
    context.log_event(
        dg.AssetMaterialization(
            POSITIONS_ASSET,
            description=(
                f"{summary.open_positions} open position(s), realized {summary.realized_pnl:.2f} USDT, "
                f"unrealized {summary.unrealized_pnl:.2f} USDT"
            ),
            metadata={
                "open_positions": summary.open_positions,
                "realized_pnl_usdt": summary.realized_pnl,
                "unrealized_pnl_usdt": summary.unrealized_pnl,
                "fees_paid_usdt": summary.fees_paid,
                "trades": summary.trades,
                f"{decision.symbol}_quantity": execution.position.quantity,
                "positions": dg.MetadataValue.md(_table(store.positions())),
            },
        )
    )
    return execution


def build_order_job(settings: Settings) -> dg.JobDefinition:
    """order_job: a decision message in, at most one order out, with trade_job's order step."""

    @dg.op(name=ORDER_OP)
    def execute_order(
        context: dg.OpExecutionContext,
        config: MessageConfig,
        trading_store: dg.ResourceParam[TradingDesk],
        binance: BinanceResource,
    ) -> None:
        place_order(context, Decision.from_json(config.message.encode()), settings, trading_store, binance)

    @dg.job(
        name="order_job",
        description="Risk-check one decision given as a message (the JSON of coin.decisions), size it, place it with "
        "the configured broker and record the order, fills and position. trade_job does this for the platform's "
        "own decisions; this job is for decisions made elsewhere.",
        executor_def=dg.in_process_executor,
    )
    def order_job() -> None:
        execute_order()

    return order_job
