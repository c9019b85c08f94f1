"""The trading store on real DuckDB files: schema, transactions, summary, and the file lock across processes."""

from __future__ import annotations

import dataclasses
import multiprocessing

import pytest

from coin_platform.trading.orders import Fill, OrderRequest, OrderResult
from coin_platform.trading.store import TradingStore, TradingStoreLocked
from coin_platform_tests.trading.support import NOW, execute_in_process, hold_store_lock, make_decision


def record_buy(store: TradingStore, symbol: str, quantity: float, price: float, fee: float) -> None:
    decision = make_decision(symbol, "enter_long", price)
    order = OrderRequest(decision.id, symbol, "buy", quantity, False, price)
    result = OrderResult(decision.id, "x1", "paper", "FILLED", (Fill(price, quantity, fee, NOW),))
    with store.transaction() as tx:
        tx.record_pending(decision, order, broker="paper", created_at=NOW)
        assert tx.record_outcome(order, result)


def test_schema_is_created_once_and_reads_are_typed_frames(tmp_path):
    store = TradingStore(tmp_path / "trading.duckdb")
    assert store.orders().is_empty() and store.fills().is_empty() and store.rejections().is_empty()
    again = TradingStore(tmp_path / "trading.duckdb")
    assert again.positions().columns == ["symbol", "quantity", "entry_price", "realized_pnl", "fees_paid", "updated_at"]
    assert str(again.orders().schema["created_at"]) == "Datetime(time_unit='us', time_zone='UTC')"


def test_summary_marks_open_positions_and_names_the_unmarked(tmp_path):
    store = TradingStore(tmp_path / "trading.duckdb")
    record_buy(store, "BTCUSDT", 0.002, 50_000.0, fee=0.1)
    record_buy(store, "ETHUSDT", 0.05, 2_000.0, fee=0.1)
    summary = store.summary({"BTCUSDT": 51_000.0})
    assert summary.unrealized_pnl == pytest.approx(0.002 * 1_000.0, rel=1e-12)
    assert summary.realized_pnl == pytest.approx(-0.2, rel=1e-12)
    assert summary.fees_paid == pytest.approx(0.2, rel=1e-12)
    assert (summary.open_positions, summary.trades, summary.unmarked_symbols) == (2, 2, ("ETHUSDT",))


def test_an_exception_inside_a_transaction_leaves_nothing(tmp_path):
    store = TradingStore(tmp_path / "trading.duckdb")
    decision = make_decision()
    order = OrderRequest(decision.id, "BTCUSDT", "buy", 0.002, False, 50_000.0)
    with pytest.raises(RuntimeError, match="crash"), store.transaction() as tx:
        tx.record_pending(decision, order, broker="paper", created_at=NOW)
        tx.record_fill(order, 0, Fill(50_000.0, 0.002, 0.1, NOW))
        raise RuntimeError("crash after the writes")
    assert store.orders().is_empty() and store.fills().is_empty() and store.positions().is_empty()


def test_a_pending_order_counts_as_exposure_and_is_settled_once(tmp_path):
    store = TradingStore(tmp_path / "trading.duckdb")
    decision = make_decision("ETHUSDT", "enter_short", 2_000.0)
    order = OrderRequest(decision.id, "ETHUSDT", "sell", 0.05, False, 2_000.0)
    result = OrderResult(decision.id, "x2", "binance", "FILLED", (Fill(2_000.0, 0.05, 0.1, NOW),))
    with store.transaction() as tx:
        tx.record_pending(decision, order, broker="binance", created_at=NOW)
        assert (tx.pending_quantity("ETHUSDT"), tx.pending_quantity("BTCUSDT")) == (-0.05, 0.0)
        assert tx.last_order_at("ETHUSDT") == NOW
        (pending,) = tx.pending_orders()
        assert (pending.order, pending.broker, pending.created_at) == (order, "binance", NOW)
    with store.transaction() as tx:
        assert tx.record_outcome(order, result)
        assert not tx.record_outcome(order, result)  # a second settlement (a racing run) writes nothing
        assert tx.pending_orders() == [] and tx.pending_quantity("ETHUSDT") == 0.0
    assert store.orders()["status"].to_list() == ["FILLED"] and store.fills().height == 1
    assert store.position("ETHUSDT").quantity == -0.05


def test_a_nested_transaction_on_the_same_file_joins_the_open_one(tmp_path):
    store = TradingStore(tmp_path / "trading.duckdb")
    with store.transaction() as outer:
        with TradingStore(tmp_path / "trading.duckdb").transaction() as inner:
            assert inner is outer
        record_buy(store, "BTCUSDT", 0.002, 50_000.0, fee=0.1)
        assert outer.position("BTCUSDT").quantity == 0.002  # seen before the commit
    assert store.position("BTCUSDT").quantity == 0.002


def test_lock_timeout_names_the_file(tmp_path):
    path = tmp_path / "trading.duckdb"
    ctx = multiprocessing.get_context("spawn")
    holding, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=hold_store_lock, args=(str(path), holding, release))
    holder.start()
    try:
        assert holding.wait(timeout=60)
        with pytest.raises(TradingStoreLocked) as caught:
            TradingStore(path, lock_timeout_s=0.2).orders()
    finally:
        release.set()
        holder.join(timeout=30)
    assert str(path) in str(caught.value) and "0.2 s" in str(caught.value)
    assert TradingStore(path).orders().is_empty()  # usable again once released


def test_two_processes_executing_at_once_both_succeed(tmp_path):
    path = tmp_path / "trading.duckdb"
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    decisions = [make_decision("BTCUSDT", "enter_long", 50_000.0), make_decision("ETHUSDT", "enter_short", 2_000.0)]
    workers = [
        ctx.Process(target=execute_in_process, args=(str(path), d.to_json(), d.price, barrier, results))
        for d in decisions
    ]
    for worker in workers:
        worker.start()
    outcome = dict(results.get(timeout=120) for _ in workers)
    for worker in workers:
        worker.join(timeout=30)
    assert outcome == {"BTCUSDT": "filled", "ETHUSDT": "filled"}
    store = TradingStore(path)
    assert sorted(store.orders()["symbol"]) == ["BTCUSDT", "ETHUSDT"]
    positions = dict(store.positions().select("symbol", "quantity").iter_rows())
    assert positions == {"BTCUSDT": pytest.approx(0.002), "ETHUSDT": pytest.approx(-0.05)}


@pytest.mark.parametrize("kind", ["file", "memory"])
def test_a_decision_is_recorded_once_and_read_back_as_it_was_with_when_it_was_published(tmp_path, kind):
    store = TradingStore(tmp_path / "trading.duckdb") if kind == "file" else TradingStore.in_memory()
    decision = dataclasses.replace(
        make_decision("ETHUSDT", "enter_short", 3_000.0), inputs={"rsi_14": 71.5, "macd_hist": None}
    )
    with store.transaction() as tx:
        assert tx.decision(decision.id) is None
        tx.record_decision(decision)
        assert tx.decision(decision.id) == (decision, None)
    later = dataclasses.replace(decision, action="hold", confidence=0.1)  # a second scoring of the same candidate
    with store.transaction() as tx:
        tx.record_decision(later)  # the first one stands
        tx.record_published(decision.id, NOW)
    with store.transaction() as tx:
        stored, published_at = tx.decision(decision.id)
        frame = tx.decisions()
    assert stored == decision and stored.inputs == decision.inputs and published_at == NOW
    assert frame["decision_id"].to_list() == [decision.id] and frame["action"].to_list() == [decision.action]
