"""The paper broker: next available price, slippage, fee, idempotency and restarts, on a real store file."""

from __future__ import annotations

import pytest

from coin_platform.trading.orders import BrokerRejected, OrderRequest
from coin_platform.trading.paper import REDUCE_ONLY_REJECTED
from coin_platform.trading.store import TradingStore
from coin_platform_tests.trading.support import MINUTE, NOW, PriceTape, paper_broker


def order(side: str = "buy", quantity: float = 0.002, *, reduce_only: bool = False, order_id: str = "d1"):
    return OrderRequest(order_id, "BTCUSDT", side, quantity, reduce_only, reference_price=49_900.0)


@pytest.fixture(params=["duckdb file", "in-memory sqlite"])
def store(request, tmp_path) -> TradingStore:
    """Every rule holds on the file store and on the in-memory one decision-path backtests use."""
    return TradingStore(tmp_path / "trading.duckdb") if request.param == "duckdb file" else TradingStore.in_memory()


@pytest.fixture
def file_store(tmp_path) -> TradingStore:
    """For what only a file can do: survive a restart."""
    return TradingStore(tmp_path / "trading.duckdb")


def test_buy_fills_at_the_next_price_plus_slippage_and_pays_the_fee(store):
    tape = PriceTape({"BTCUSDT": [(NOW - MINUTE, 49_000.0), (NOW + MINUTE, 50_000.0)]})
    result = paper_broker(store, tape).submit(order("buy"))
    (fill,) = result.fills
    assert tape.asked == [("BTCUSDT", NOW)]
    # 50,000 × 1.0002 = 50,010; fee 0.1 % × 50,010 × 0.002 = 0.10002
    assert fill.price == pytest.approx(50_010.0, rel=1e-12)
    assert fill.fee == pytest.approx(0.10002, rel=1e-12)
    assert (fill.quantity, fill.time) == (0.002, NOW + MINUTE)
    assert (result.status, result.broker, result.existing) == ("FILLED", "paper", False)


def test_sell_gets_the_price_minus_slippage(store):
    tape = PriceTape({"BTCUSDT": [(NOW, 50_000.0)]})
    (fill,) = paper_broker(store, tape).submit(order("sell")).fills
    # 50,000 × 0.9998 = 49,990; fee 0.1 % × 49,990 × 0.002 = 0.09998
    assert (fill.price, fill.fee) == (pytest.approx(49_990.0, rel=1e-12), pytest.approx(0.09998, rel=1e-12))


def test_a_resubmitted_id_returns_the_first_fill_and_places_nothing(file_store):
    tape = PriceTape({"BTCUSDT": [(NOW, 50_000.0), (NOW + MINUTE, 60_000.0)]})
    first = paper_broker(file_store, tape).submit(order())
    restarted_store = TradingStore(file_store.path)
    again = paper_broker(restarted_store, tape, at=NOW + MINUTE).submit(order())
    assert again.existing and again.fills == first.fills and again.exchange_order_id == first.exchange_order_id
    assert len(tape.asked) == 1  # the second submit never looked for a price


def test_no_price_is_a_clear_rejection_and_places_nothing(store):
    tape = PriceTape({"BTCUSDT": [(NOW - MINUTE, 50_000.0)]})
    with pytest.raises(BrokerRejected, match=r"no BTCUSDT price at or after 2024-03-01T12:00:00\+00:00"):
        paper_broker(store, tape).submit(order())
    later = PriceTape({"BTCUSDT": [(NOW, 50_000.0)]})
    assert not paper_broker(store, later).submit(order()).existing


def test_reduce_only_without_a_position_to_reduce_is_rejected_like_binance(store):
    tape = PriceTape({"BTCUSDT": [(NOW, 50_000.0)]})
    with pytest.raises(BrokerRejected, match="would not reduce the position 0") as caught:
        paper_broker(store, tape).submit(order("sell", reduce_only=True))
    assert caught.value.code == REDUCE_ONLY_REJECTED
