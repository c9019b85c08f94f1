"""execute_decision end to end: paper broker, real DuckDB store files, hand-computed numbers."""

from __future__ import annotations

import datetime as dt

import pytest

from coin_platform.settings import RiskConfig, TradingConfig
from coin_platform.trading.execution import Execution, execute_decision
from coin_platform.trading.orders import OrderOutcomeUnknown, OrderRequest, OrderResult
from coin_platform.trading.paper import PaperBroker
from coin_platform.trading.store import TradingStore
from coin_platform_tests.trading.support import MINUTE, NOW, PriceTape, make_decision, paper_broker

EXACT = {"rel": 1e-12}
LATER = NOW + 10 * MINUTE
DEFAULTS = TradingConfig()


@pytest.fixture
def store(tmp_path) -> TradingStore:
    return TradingStore(tmp_path / "trading.duckdb")


@pytest.fixture
def tape() -> PriceTape:
    return PriceTape({"BTCUSDT": [(NOW, 50_000.0), (LATER, 51_000.0)], "ETHUSDT": [(NOW, 2_000.0), (LATER, 1_900.0)]})


def run(decision, store, tape, *, now=NOW, config=DEFAULTS, broker=None) -> Execution:
    broker = broker or paper_broker(store, tape, at=now)
    return execute_decision(decision, store=store, broker=broker, config=config, now=now)


def test_long_round_trip_with_default_fee_and_slippage(store, tape):
    opened = run(make_decision("BTCUSDT", "enter_long", 50_000.0), store, tape)
    assert opened.status == "filled" and opened.order.quantity == 100.0 / 50_000.0 and not opened.order.reduce_only
    # buy 0.002 at 50,000 × 1.0002 = 50,010; fee 0.001 × 50,010 × 0.002 = 0.10002
    assert (opened.position.quantity, opened.position.entry_price) == (0.002, pytest.approx(50_010.0, **EXACT))
    assert opened.position.realized_pnl == pytest.approx(-0.10002, **EXACT)

    exit_decision = make_decision("BTCUSDT", "exit_long", 51_000.0, candle_close=LATER)
    closed = run(exit_decision, store, tape, now=LATER)
    assert closed.status == "filled" and closed.order.reduce_only and closed.order.side == "sell"
    assert closed.order.quantity == 0.002
    # sell 0.002 at 51,000 × 0.9998 = 50,989.8; fee 0.1019796; gross 0.002 × 979.8 = 1.9596
    (fill,) = closed.result.fills
    assert (fill.price, fill.fee) == (pytest.approx(50_989.8, **EXACT), pytest.approx(0.1019796, **EXACT))
    assert closed.position.quantity == 0.0
    assert closed.position.realized_pnl == pytest.approx(1.9596 - 0.1019796 - 0.10002, **EXACT)
    assert closed.summary.fees_paid == pytest.approx(0.2019996, **EXACT)
    assert (closed.summary.open_positions, closed.summary.trades, closed.summary.unrealized_pnl) == (0, 2, 0.0)
    assert store.fills()["realized_pnl"].to_list() == [
        pytest.approx(-0.10002, **EXACT),
        pytest.approx(1.9596 - 0.1019796, **EXACT),
    ]


def test_short_round_trip(store, tape):
    opened = run(make_decision("ETHUSDT", "enter_short", 2_000.0), store, tape)
    # sell 0.05 at 2,000 × 0.9998 = 1,999.6; fee 0.09998
    assert opened.position.quantity == -0.05 and opened.position.entry_price == pytest.approx(1_999.6, **EXACT)
    closed = run(make_decision("ETHUSDT", "exit_short", 1_900.0, candle_close=LATER), store, tape, now=LATER)
    # buy 0.05 at 1,900 × 1.0002 = 1,900.38; fee 0.095019; gross 0.05 × 99.22 = 4.961
    assert closed.order.side == "buy" and closed.position.quantity == 0.0
    assert closed.position.realized_pnl == pytest.approx(4.961 - 0.095019 - 0.09998, **EXACT)


def test_hold_places_nothing(store, tape):
    execution = run(make_decision(action="hold"), store, tape)
    assert (execution.status, execution.order, execution.result) == ("hold", None, None)
    assert store.orders().is_empty() and store.rejections().is_empty() and tape.asked == []


def test_a_duplicate_decision_doubles_nothing_even_after_a_restart(store, tape):
    decision = make_decision()
    assert run(decision, store, tape).status == "filled"
    again = run(decision, store, tape)
    restarted = TradingStore(store.path)
    after_restart = run(decision, restarted, tape)
    for execution in (again, after_restart):
        assert execution.status == "duplicate" and execution.order is None
        assert "already handled: paper order FILLED" in execution.reason
        assert execution.position.quantity == 0.002
    assert (restarted.orders().height, restarted.fills().height, len(tape.asked)) == (1, 1, 1)


def test_restart_resumes_positions(store, tape):
    run(make_decision("BTCUSDT", "enter_long", 50_000.0), store, tape)
    new_store = TradingStore(store.path)
    assert new_store.position("BTCUSDT").quantity == 0.002
    closed = run(make_decision("BTCUSDT", "exit_long", 51_000.0, candle_close=LATER), new_store, tape, now=LATER)
    assert closed.order.quantity == 0.002 and closed.position.quantity == 0.0


def test_exit_without_a_position_in_that_direction_places_nothing(store, tape):
    flat_exit = run(make_decision("BTCUSDT", "exit_long"), store, tape)
    assert flat_exit.status == "no_position" and "no BTCUSDT position to close" in flat_exit.reason
    run(make_decision("ETHUSDT", "enter_long", 2_000.0), store, tape)
    wrong_side = run(make_decision("ETHUSDT", "exit_short", 2_000.0), store, tape)
    assert wrong_side.status == "no_position" and wrong_side.position.quantity == 0.05
    assert store.rejections()["rule"].to_list() == ["no_position", "no_position"]
    assert store.orders()["symbol"].to_list() == ["ETHUSDT"]
    # a stale redelivery must not close a position opened since
    assert run(make_decision("BTCUSDT", "exit_long"), store, tape).status == "duplicate"


def test_a_risk_refusal_is_recorded_with_its_reason(store, tape):
    config = TradingConfig(risk=RiskConfig(kill_switch=True))
    decision = make_decision()
    execution = run(decision, store, tape, config=config)
    assert execution.status == "risk_rejected" and execution.reason.startswith("kill_switch:")
    assert execution.order is not None and execution.result is None
    rejection = store.rejections().row(0, named=True)
    assert (rejection["decision_id"], rejection["rule"], rejection["reason"]) == (
        decision.id,
        "kill_switch",
        execution.reason,
    )
    assert store.orders().is_empty() and tape.asked == []


def test_cooldown_refuses_a_second_entry_but_lets_the_exit_through(store, tape):
    run(make_decision("BTCUSDT", "enter_long", 50_000.0), store, tape)
    soon = NOW + MINUTE
    tape.prices["BTCUSDT"].insert(1, (soon, 50_500.0))
    again = run(make_decision("BTCUSDT", "enter_long", 50_500.0, candle_close=soon), store, tape, now=soon)
    assert again.status == "risk_rejected" and again.reason.startswith("cooldown: previous BTCUSDT order was 60 s ago")
    exit_now = run(make_decision("BTCUSDT", "exit_long", 50_500.0, candle_close=soon), store, tape, now=soon)
    assert exit_now.status == "filled" and exit_now.position.quantity == 0.0


def test_daily_loss_limit_counts_todays_fees_and_resets_the_next_utc_day(store, tape):
    config = TradingConfig(risk=RiskConfig(daily_loss_limit_usdt=0.1))
    run(make_decision("BTCUSDT", "enter_long", 50_000.0), store, tape, config=config)  # fee 0.10002 realized
    refused = run(make_decision("ETHUSDT", "enter_long", 2_000.0), store, tape, config=config)
    assert refused.status == "risk_rejected" and "realized PnL today (2024-03-01 UTC) is -0.10" in refused.reason
    tomorrow = NOW + dt.timedelta(days=1)
    tape.prices["ETHUSDT"].append((tomorrow, 2_000.0))
    next_day = make_decision("ETHUSDT", "enter_long", 2_000.0, candle_close=tomorrow)
    assert run(next_day, store, tape, now=tomorrow, config=config).status == "filled"


def test_a_broker_rejection_is_recorded_with_the_brokers_message(store):
    no_prices = PriceTape({})
    decision = make_decision()
    execution = run(decision, store, no_prices)
    assert execution.status == "broker_rejected"
    assert execution.reason.startswith("paper rejected the order: no BTCUSDT price at or after 2024-03-01T12:00:00")
    order = store.orders().row(0, named=True)
    assert (order["client_order_id"], order["status"], order["reason"]) == (decision.id, "REJECTED", execution.reason)
    assert store.fills().is_empty() and store.positions().is_empty()
    assert run(decision, store, PriceTape({"BTCUSDT": [(NOW, 50_000.0)]})).status == "duplicate"
    # a rejected order does not start the cooldown
    other = make_decision("BTCUSDT", "enter_long", 50_000.0, candle_close=NOW + MINUTE)
    assert run(other, store, PriceTape({"BTCUSDT": [(NOW, 50_000.0)]})).status == "filled"


class LostResponse:
    """An exchange that places the order and then loses the response (Binance's 503 "unknown error")."""

    name = "paper"

    def __init__(self, exchange: PaperBroker) -> None:
        self.exchange = exchange

    def submit(self, order: OrderRequest) -> OrderResult:
        self.exchange.submit(order)
        raise OrderOutcomeUnknown(f"no response for {order.client_order_id}")


class AcceptedNotFilled:
    """An exchange that acknowledges the order without filling it yet."""

    name = "exchange"

    def submit(self, order: OrderRequest) -> OrderResult:
        return OrderResult(order.client_order_id, "42", self.name, "NEW")


def test_an_unknown_outcome_propagates_leaves_nothing_and_the_retry_fills_once(store, tape):
    decision = make_decision()
    with pytest.raises(OrderOutcomeUnknown, match="no response"):
        run(decision, store, tape, broker=LostResponse(paper_broker(store, tape)))
    assert store.orders().is_empty() and store.fills().is_empty() and store.positions().is_empty()
    assert store.rejections().is_empty()
    retried = run(decision, store, tape)
    assert retried.status == "filled" and not retried.result.existing
    assert (store.orders().height, store.fills().height, retried.position.quantity) == (1, 1, 0.002)


def test_an_accepted_but_unfilled_order_fails_the_run_instead_of_recording_a_wrong_position(store, tape):
    with pytest.raises(OrderOutcomeUnknown, match="returned NEW with nothing filled"):
        run(make_decision(), store, tape, broker=AcceptedNotFilled())
    assert store.orders().is_empty()


@pytest.mark.parametrize(
    ("decision", "now", "message"),
    [
        (make_decision("BTCUSDT", "enter_long", action="sell"), NOW, "action 'sell' contradicts enter_long"),
        (make_decision("BTCUSDT", "enter_long", price=0.0), NOW, "price must be a positive number"),
        (make_decision(), NOW.replace(tzinfo=None), "now must be timezone-aware"),
    ],
)
def test_bad_input_is_refused_by_name_and_writes_nothing(store, tape, decision, now, message):
    with pytest.raises(ValueError, match=message):
        run(decision, store, tape, now=now)
    assert store.orders().is_empty() and store.rejections().is_empty()
