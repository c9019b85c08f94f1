"""Binance's isolated liquidation price, computed by hand from the documented formula and brackets."""

from __future__ import annotations

import pytest

from coin_platform.backtest.margin import BTCUSDT_BRACKETS, Bracket, MarginBrackets, liquidation_price


def test_the_btcusdt_table_has_binance_maintenance_amounts():
    # Binance's FAQ: "the Maintenance Amount on Level 3 = 250,000 * (1% - 0.5%) + 50 USDT = 1,300 USDT".
    cums = [b.cum for b in BTCUSDT_BRACKETS.brackets]
    assert cums[:4] == [0, 50, 1_300, 16_300]
    assert cums[-1] == 100_016_300
    assert [b.max_leverage for b in BTCUSDT_BRACKETS.brackets][:3] == [125, 100, 50]


def test_a_long_in_the_first_bracket():
    # 1 BTC long at 10,000 with 10x: WB 1,000, notional 10,000 -> MMR 0.4 %, cum 0.
    # LP = (1,000 + 0 - 1 x 10,000) / (1 x 0.004 - 1) = -9,000 / -0.996
    assert liquidation_price(1, 1.0, 10_000.0, 1_000.0) == pytest.approx(9_036.144578313253)


def test_a_short_in_the_first_bracket():
    # LP = (1,000 + 0 + 10,000) / (0.004 + 1)
    assert liquidation_price(-1, 1.0, 10_000.0, 1_000.0) == pytest.approx(10_956.175298804781)


def test_a_long_in_the_third_bracket():
    # 30 BTC at 10,000 with 20x: notional 300,000 -> MMR 1 %, cum 1,300; WB 15,000.
    # LP = (15,000 + 1,300 - 300,000) / (30 x 0.01 - 30) = -283,700 / -29.7; 30 x LP = 286,566 stays in bracket 3.
    assert liquidation_price(1, 30.0, 10_000.0, 15_000.0) == pytest.approx(9_552.188552188552)


def test_the_bracket_at_the_liquidation_price_decides():
    # Short 1 BTC at 49,000 with 5x (WB 9,800): bracket 1 gives 58,800 / 1.004 = 58,565.7, a notional
    # above 50,000, so Binance's note says recompute with bracket 2: (9,800 + 50 + 49,000) / 1.005.
    assert liquidation_price(-1, 1.0, 49_000.0, 9_800.0) == pytest.approx(58_557.21393034826)
    # Long 1 BTC at 60,000 with 5x (WB 12,000): entry in bracket 2, but at LP the notional is in bracket 1.
    assert liquidation_price(1, 1.0, 60_000.0, 12_000.0) == pytest.approx(48_000 / 0.996)


def test_a_long_without_leverage_cannot_be_liquidated():
    assert liquidation_price(1, 1.0, 10_000.0, 10_000.0) is None


def test_a_bracket_table_from_the_leverage_bracket_response():
    response = {
        "symbol": "ETHUSDT",
        "brackets": [
            {
                "bracket": 2,
                "initialLeverage": 50,
                "notionalCap": 50_000,
                "notionalFloor": 10_000,
                "maintMarginRatio": 0.01,
                "cum": 35.0,
            },
            {
                "bracket": 1,
                "initialLeverage": 75,
                "notionalCap": 10_000,
                "notionalFloor": 0,
                "maintMarginRatio": 0.0065,
                "cum": 0,
            },
        ],
    }
    table = MarginBrackets.from_binance([response])
    assert table.symbol == "ETHUSDT"
    assert [b.maint_margin_ratio for b in table.brackets] == [0.0065, 0.01]
    # 1 ETH at 1,000 with 10x: LP = (100 + 0 - 1,000) / (0.0065 - 1).
    assert liquidation_price(1, 1.0, 1_000.0, 100.0, table) == pytest.approx(900 / 0.9935)


def test_a_table_that_breaks_binance_rules_is_refused():
    with pytest.raises(ValueError, match="cum"):
        MarginBrackets("X", (Bracket(0, 100, 10, 0.01, 0), Bracket(100, 200, 5, 0.02, 5.0)))
    with pytest.raises(ValueError, match="notional_floor"):
        MarginBrackets("X", (Bracket(0, 100, 10, 0.01, 0), Bracket(150, 200, 5, 0.02, 1.5)))
    with pytest.raises(ValueError, match="notionalCap"):
        MarginBrackets.from_binance({"symbol": "X", "brackets": [{"notionalFloor": 0}]})
    with pytest.raises(ValueError, match="side"):
        liquidation_price(0, 1.0, 1.0, 1.0)
