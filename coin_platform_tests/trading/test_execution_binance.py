"""execute_decision with the Binance broker against the replay exchange: unknown outcomes and a slow exchange.

The exchange's own counts (orders placed) are compared with the trading store's records, so
"recorded once, placed once" is checked on both sides.
"""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from coin_platform.settings import RiskConfig, TradingConfig
from coin_platform.trading.execution import execute_decision, reconcile_pending
from coin_platform.trading.orders import OrderOutcomeUnknown
from coin_platform.trading.store import TradingStore
from coin_platform_tests.trading.support import SCOPE, make_decision
from coin_platform_tests.trading.test_binance_broker import broker

SECOND = dt.timedelta(seconds=1)
DEFAULTS = TradingConfig()


def execute(decision, store, trader, now, config=DEFAULTS):
    return execute_decision(decision, store=store, broker=trader, config=config, scope=SCOPE, now=now)


def at(seconds: float) -> dt.datetime:
    """A moment `seconds` after the test started, decisions made 1 ms after their candle closed before it."""
    return START + seconds * SECOND


START = dt.datetime.now(dt.UTC).replace(microsecond=0)


def placed(server) -> int:
    return server.stats()["orders_placed"]


def test_an_order_whose_outcome_stays_unknown_is_recorded_before_sending_and_blocks_a_second_order(
    start_replay, tmp_path
):
    # Placed, but the reply is a 503; the queries after it fail too (the one before sending succeeds).
    server = start_replay(faults="placed_503:at=1:on=order,503:at=2+3+4+5+6+7:on=query")
    store = TradingStore(tmp_path / "trading.duckdb")
    first = make_decision("BTCUSDT", "enter_long", 60_000.0, candle_close=at(0))
    with broker(server.url, max_queries=3) as trader:
        with pytest.raises(OrderOutcomeUnknown) as unknown:
            execute(first, store, trader, at(1))
        assert first.id in str(unknown.value) and "PENDING" in str(unknown.value)
        pending = store.orders().row(0, named=True)
        assert (pending["client_order_id"], pending["status"], store.orders().height) == (first.id, "PENDING", 1)

        # 30 s later a second decision on the symbol: the pending order counts toward the cooldown.
        second = make_decision("BTCUSDT", "enter_long", 60_000.0, candle_close=at(30))
        refused = execute(second, store, trader, at(31))
        assert refused.status == "risk_rejected" and refused.reason.startswith("cooldown: previous BTCUSDT order")
        (still,) = refused.reconciled  # the run asked the exchange again, which still could not say
        assert (still.client_order_id, still.status) == (first.id, "PENDING")
        assert (placed(server), store.orders().height) == (1, 1)

        # Once the exchange answers, reconciliation records the fill and the position.
        (outcome,) = reconcile_pending(store, trader, at(60))
    assert (outcome.client_order_id, outcome.status) == (first.id, "FILLED")
    order = store.orders().row(0, named=True)
    assert order["status"] == "FILLED" and order["filled_quantity"] == 0.001 and order["exchange_order_id"]
    assert store.fills().height == 1 and store.position("BTCUSDT").quantity == 0.001
    assert (placed(server), store.orders().height) == (1, 1)


def test_a_pending_order_counts_toward_the_position_limit(start_replay, tmp_path):
    server = start_replay(faults="placed_503:at=1:on=order,503:at=2+3+4+5+6+7:on=query")
    store = TradingStore(tmp_path / "trading.duckdb")
    config = TradingConfig(order_notional_usdt=100, risk=RiskConfig(cooldown_seconds=0, max_position_notional_usdt=150))
    with broker(server.url, max_queries=3) as trader:
        with pytest.raises(OrderOutcomeUnknown):
            execute(make_decision("BTCUSDT", "enter_long", 60_000.0, candle_close=at(0)), store, trader, at(1), config)
        second = make_decision("BTCUSDT", "enter_long", 60_000.0, candle_close=at(30))
        refused = execute(second, store, trader, at(31), config)
    assert refused.status == "risk_rejected" and refused.reason.startswith("max_position_notional:")
    assert (placed(server), store.orders().height) == (1, 1)


def test_a_retried_decision_is_reconciled_not_sent_again(start_replay, tmp_path):
    server = start_replay(faults="placed_503:at=1:on=order,503:at=2+3+4:on=query")
    store = TradingStore(tmp_path / "trading.duckdb")
    decision = make_decision("BTCUSDT", "enter_long", 60_000.0, candle_close=at(0))
    with broker(server.url, max_queries=3) as trader:
        with pytest.raises(OrderOutcomeUnknown):
            execute(decision, store, trader, at(1))
        retried = execute(decision, store, trader, at(5))  # e.g. the failed run re-executed
    assert retried.status == "duplicate" and "binance order FILLED" in retried.reason
    assert [(r.client_order_id, r.status) for r in retried.reconciled] == [(decision.id, "FILLED")]
    assert (placed(server), server.stats()["order_requests"], store.fills().height) == (1, 1, 1)


def test_a_pending_order_the_exchange_never_got_is_closed_as_not_placed_after_a_while(start_replay, tmp_path):
    server = start_replay(faults="502:every=1:on=order")  # every placement refused unprocessed
    store = TradingStore(tmp_path / "trading.duckdb")
    decision = make_decision("BTCUSDT", "enter_long", 60_000.0, candle_close=at(0))
    with broker(server.url, max_sends=2) as trader:
        with pytest.raises(OrderOutcomeUnknown):
            execute(decision, store, trader, at(1))
        (soon,) = reconcile_pending(store, trader, at(60))
        assert soon.status == "PENDING" and "not on the exchange" in soon.reason
        (later,) = reconcile_pending(store, trader, at(1 + 601))
    assert later.status == "REJECTED" and "never placed" in later.reason
    assert store.orders()["status"].to_list() == ["REJECTED"] and placed(server) == 0
    assert reconcile_pending(store, trader, at(700)) == []


def test_a_slow_order_call_does_not_hold_the_store_lock(start_replay, tmp_path):
    # The first placement is processed at once and answered 3 s later; the store gives up waiting after 1 s.
    server = start_replay(faults="slow:at=1:on=order:delay=3")
    path = tmp_path / "trading.duckdb"
    results: dict[str, object] = {}

    def first_order() -> None:
        with broker(server.url) as trader:
            decision = make_decision("BTCUSDT", "enter_long", 60_000.0, candle_close=at(0))
            try:
                results["BTCUSDT"] = execute(decision, TradingStore(path, lock_timeout_s=1), trader, at(1)).status
            except Exception as exc:  # noqa: BLE001 - reported to the test
                results["BTCUSDT"] = repr(exc)

    slow = threading.Thread(target=first_order)
    slow.start()
    for _ in range(200):  # until the slow placement has reached the exchange
        if server.stats()["order_requests"] or not slow.is_alive():
            break
        threading.Event().wait(0.05)
    with broker(server.url) as trader:
        other = make_decision("ETHUSDT", "enter_long", 3_000.0, candle_close=at(0))
        results["ETHUSDT"] = execute(other, TradingStore(path, lock_timeout_s=1), trader, at(1)).status
    slow.join(timeout=60)
    assert results == {"BTCUSDT": "filled", "ETHUSDT": "filled"}
    store = TradingStore(path)
    assert sorted(store.orders()["status"]) == ["FILLED", "FILLED"] and store.fills().height == 2
    assert placed(server) == 2
