"""Position accounting with hand-computed numbers."""

from __future__ import annotations

import pytest

from coin_platform.trading.positions import Position, apply_fill

EXACT = {"rel": 1e-12, "abs": 1e-12}


def test_open_add_reduce_close_long():
    opened = apply_fill(Position("BTCUSDT"), "buy", 1.0, 100.0, fee=0.1)
    assert opened.position == Position("BTCUSDT", 1.0, 100.0, -0.1, 0.1)
    assert opened.realized_pnl == pytest.approx(-0.1, **EXACT)

    # 1 @ 100 + 3 @ 120 -> 4 @ (100 + 360) / 4 = 115
    added = apply_fill(opened.position, "buy", 3.0, 120.0, fee=0.36).position
    assert (added.quantity, added.entry_price) == (4.0, pytest.approx(115.0, **EXACT))
    assert (added.realized_pnl, added.fees_paid) == (pytest.approx(-0.46, **EXACT), pytest.approx(0.46, **EXACT))

    # sell 1 @ 130: 1 × (130 − 115) − 0.13 = 14.87; the entry of what is left does not move
    reduced = apply_fill(added, "sell", 1.0, 130.0, fee=0.13)
    assert reduced.realized_pnl == pytest.approx(14.87, **EXACT)
    assert (reduced.position.quantity, reduced.position.entry_price) == (3.0, pytest.approx(115.0, **EXACT))

    # sell 3 @ 110: 3 × (110 − 115) − 0.33 = −15.33; flat, entry reset
    closed = apply_fill(reduced.position, "sell", 3.0, 110.0, fee=0.33)
    assert closed.realized_pnl == pytest.approx(-15.33, **EXACT)
    assert closed.position.direction == "flat"
    assert (closed.position.quantity, closed.position.entry_price) == (0.0, 0.0)
    assert closed.position.realized_pnl == pytest.approx(-0.1 - 0.36 + 14.87 - 15.33, **EXACT)
    assert closed.position.fees_paid == pytest.approx(0.1 + 0.36 + 0.13 + 0.33, **EXACT)


def test_short_gains_when_price_falls():
    short = apply_fill(Position("ETHUSDT"), "sell", 2.0, 100.0, fee=0.0).position
    assert (short.quantity, short.direction) == (-2.0, "short")
    assert short.unrealized_pnl(80.0) == pytest.approx(40.0, **EXACT)
    covered = apply_fill(short, "buy", 2.0, 80.0, fee=0.16)
    assert covered.realized_pnl == pytest.approx(2 * 20.0 - 0.16, **EXACT)
    assert covered.position.quantity == 0.0


def test_flip_long_to_short_closes_then_opens_at_the_fill_price():
    long = apply_fill(Position("BTCUSDT"), "buy", 2.0, 100.0, fee=0.0).position
    flipped = apply_fill(long, "sell", 5.0, 90.0, fee=0.45)
    # only the 2 long are closed: 2 × (90 − 100) − 0.45
    assert flipped.realized_pnl == pytest.approx(-20.45, **EXACT)
    assert (flipped.position.quantity, flipped.position.entry_price) == (-3.0, 90.0)
    assert flipped.position.unrealized_pnl(80.0) == pytest.approx(30.0, **EXACT)


def test_flip_short_to_long():
    short = apply_fill(Position("BTCUSDT"), "sell", 1.0, 200.0, fee=0.0).position
    flipped = apply_fill(short, "buy", 1.5, 150.0, fee=0.0)
    assert flipped.realized_pnl == pytest.approx(50.0, **EXACT)
    assert (flipped.position.quantity, flipped.position.entry_price) == (0.5, 150.0)


def test_unrealized_pnl_and_notional_at_a_mark():
    position = Position("BTCUSDT", quantity=0.002, entry_price=50_010.0)
    assert position.unrealized_pnl(51_000.0) == pytest.approx(0.002 * 990.0, **EXACT)
    assert position.notional(51_000.0) == pytest.approx(102.0, **EXACT)
    assert Position("BTCUSDT").unrealized_pnl(51_000.0) == 0.0


def test_float_residue_after_closing_counts_as_flat():
    position = Position("BTCUSDT")
    for quantity in (0.1, 0.2):
        position = apply_fill(position, "buy", quantity, 100.0, fee=0.0).position
    assert position.quantity != 0.3  # 0.1 + 0.2 in floats
    closed = apply_fill(position, "sell", 0.3, 100.0, fee=0.0).position
    assert (closed.quantity, closed.entry_price) == (0.0, 0.0)


@pytest.mark.parametrize(
    ("side", "quantity", "price", "fee", "message"),
    [
        ("buy", 0.0, 100.0, 0.0, "quantity"),
        ("buy", 1.0, float("nan"), 0.0, "price"),
        ("buy", 1.0, 100.0, -0.1, "fee"),
        ("hold", 1.0, 100.0, 0.0, "side"),
    ],
)
def test_bad_fills_are_refused_by_name(side, quantity, price, fee, message):
    with pytest.raises(ValueError, match=message):
        apply_fill(Position("BTCUSDT"), side, quantity, price, fee)
