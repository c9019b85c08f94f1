"""execute_decision end to end: paper broker, real DuckDB store files, hand-computed numbers."""

from __future__ import annotations

import datetime as dt

import pytest

from coin_platform.settings import PlatformConfig, RiskConfig, TradingConfig
from coin_platform.trading.execution import Execution, TradingScope, execute_decision
from coin_platform.trading.orders import OrderOutcomeUnknown, OrderRequest, OrderResult
from coin_platform.trading.paper import PaperBroker
from coin_platform.trading.store import TradingStore
from coin_platform_tests.trading.support import MINUTE, NOW, SCOPE, PriceTape, make_decision, paper_broker

EXACT = {"rel": 1e-12}
LATER = NOW + 10 * MINUTE
DEFAULTS = TradingConfig()


@pytest.fixture(params=["duckdb file", "in-memory sqlite"])
def store(request, tmp_path) -> TradingStore:
    """Every rule holds on the file store and on the in-memory one decision-path backtests use."""
    return TradingStore(tmp_path / "trading.duckdb") if request.param == "duckdb file" else TradingStore.in_memory()


@pytest.fixture
def file_store(tmp_path) -> TradingStore:
    """For what only a file can do: survive a restart."""
    return TradingStore(tmp_path / "trading.duckdb")


@pytest.fixture
def tape() -> PriceTape:
    return PriceTape({"BTCUSDT": [(NOW, 50_000.0), (LATER, 51_000.0)], "ETHUSDT": [(NOW, 2_000.0), (LATER, 1_900.0)]})


def run(decision, store, tape, *, now=NOW, config=DEFAULTS, broker=None) -> Execution:
    broker = broker or paper_broker(store, tape, at=now)
    return execute_decision(decision, store=store, broker=broker, config=config, scope=SCOPE, now=now)


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


def test_a_duplicate_decision_doubles_nothing_even_after_a_restart(file_store, tape):
    decision = make_decision()
    assert run(decision, file_store, tape).status == "filled"
    again = run(decision, file_store, tape)
    restarted = TradingStore(file_store.path)
    after_restart = run(decision, restarted, tape)
    for execution in (again, after_restart):
        assert execution.status == "duplicate" and execution.order is None
        assert "already handled: paper order FILLED" in execution.reason
        assert execution.position.quantity == 0.002
    assert (restarted.orders().height, restarted.fills().height, len(tape.asked)) == (1, 1, 1)


def test_restart_resumes_positions(file_store, tape):
    run(make_decision("BTCUSDT", "enter_long", 50_000.0), file_store, tape)
    new_store = TradingStore(file_store.path)
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

    def lookup(self, order: OrderRequest) -> OrderResult | None:
        return self.exchange.lookup(order)


class AcceptedNotFilled:
    """An exchange that acknowledges the order without filling it yet."""

    name = "exchange"

    def submit(self, order: OrderRequest) -> OrderResult:
        return OrderResult(order.client_order_id, "42", self.name, "NEW")

    def lookup(self, order: OrderRequest) -> OrderResult | None:
        return self.submit(order)


def test_an_unknown_outcome_stays_pending_and_the_retry_reconciles_it_without_sending_again(store, tape):
    decision = make_decision()
    with pytest.raises(OrderOutcomeUnknown, match=f"order {decision.id} .*recorded as PENDING.*no response"):
        run(decision, store, tape, broker=LostResponse(paper_broker(store, tape)))
    assert store.orders()["status"].to_list() == ["PENDING"]
    assert store.fills().is_empty() and store.positions().is_empty() and store.rejections().is_empty()
    retried = run(decision, store, tape)
    assert retried.status == "duplicate" and "already handled: paper order FILLED" in retried.reason
    assert [(r.client_order_id, r.status) for r in retried.reconciled] == [(decision.id, "FILLED")]
    assert (store.orders().height, store.fills().height, retried.position.quantity) == (1, 1, 0.002)
    assert len(tape.asked) == 1  # priced (and filled) once


def test_an_accepted_but_unfilled_order_stays_pending_and_fails_the_run(store, tape):
    decision = make_decision()
    with pytest.raises(OrderOutcomeUnknown, match="returned NEW with nothing filled.*stays PENDING"):
        run(decision, store, tape, broker=AcceptedNotFilled())
    with pytest.raises(OrderOutcomeUnknown, match=f"order {decision.id} .*still PENDING"):
        run(decision, store, tape, broker=AcceptedNotFilled())  # a retry asks, and is told NEW again
    assert store.orders()["status"].to_list() == ["PENDING"] and store.fills().is_empty()
    other = run(make_decision("ETHUSDT", "enter_long", 2_000.0), store, tape)  # the paper broker cannot ask
    (left,) = other.reconciled
    assert other.status == "filled" and (left.client_order_id, left.status) == (decision.id, "PENDING")
    assert "placed with the exchange broker" in left.reason


@pytest.mark.parametrize(
    ("decision", "now", "message"),
    [
        (make_decision("BTCUSDT", "enter_long", action="sell"), NOW, "action 'sell' contradicts enter_long"),
        (make_decision(), NOW.replace(tzinfo=None), "now must be timezone-aware"),
    ],
)
def test_bad_input_is_refused_by_name_and_writes_nothing(store, tape, decision, now, message):
    with pytest.raises(ValueError, match=message):
        run(decision, store, tape, now=now)
    assert store.orders().is_empty() and store.rejections().is_empty()


def test_a_stale_decision_is_refused_and_recorded(store, tape):
    three_days_ago = make_decision(candle_close=NOW - dt.timedelta(days=3))
    execution = run(three_days_ago, store, tape)
    assert execution.status == "risk_rejected"
    assert execution.reason.startswith("stale_decision: its candle closed 259200 s before the order")
    assert "above trading.max_decision_age_seconds (900 s)" in execution.reason
    assert store.rejections()["rule"].to_list() == ["stale_decision"]
    assert store.orders().is_empty() and tape.asked == []
    config = TradingConfig(max_decision_age_seconds=300)
    just_in_time = make_decision("ETHUSDT", "enter_long", 2_000.0, candle_close=NOW - dt.timedelta(seconds=299))
    assert run(just_in_time, store, tape, config=config).status == "filled"


def test_a_decision_from_the_future_is_refused(store, tape):
    execution = run(make_decision(candle_close=NOW + dt.timedelta(hours=1)), store, tape)
    assert execution.status == "risk_rejected" and execution.reason.startswith("stale_decision: its candle closes")
    assert store.orders().is_empty() and tape.asked == []


@pytest.mark.parametrize(
    ("decision", "named"),
    [
        (make_decision("DOGEUSDT"), "symbol DOGEUSDT is not a configured symbol (BTCUSDT, ETHUSDT, SOLUSDT)"),
        (make_decision(strategy="rsi_reversal"), "strategy rsi_reversal on 1m candles is not configured"),
        (make_decision(interval="15m"), "strategy ema_crossover on 15m candles is not configured"),
    ],
)
def test_a_decision_outside_the_configuration_is_refused_and_recorded(store, tape, decision, named):
    execution = run(decision, store, tape)
    assert execution.status == "risk_rejected" and execution.reason == f"not_configured: {named}; not sent"
    assert store.rejections()["rule"].to_list() == ["not_configured"]
    assert store.orders().is_empty() and tape.asked == []


def test_the_scope_follows_the_platform_config():
    config = PlatformConfig.model_validate(
        {
            "symbols": ["BTCUSDT", "ETHUSDT"],
            "intervals": ["1m", "15m"],
            "history_start": "2024-01-01",
            "strategies": [
                {"name": "fast", "kind": "ema_crossover", "intervals": ["1m"]},
                {"name": "everywhere", "kind": "rsi_reversal"},
                {"name": "off", "kind": "macd_crossover", "enabled": False},
            ],
        }
    )
    scope = TradingScope.from_config(config)
    assert scope.symbols == {"BTCUSDT", "ETHUSDT"}
    assert scope.strategies == {("fast", "1m"), ("everywhere", "1m"), ("everywhere", "15m")}
