"""Each risk rule refuses with its name and numbers, and lets through what its docstring promises."""

from __future__ import annotations

import datetime as dt

import pytest

from coin_platform.settings import RiskConfig
from coin_platform.trading.orders import OrderRequest
from coin_platform.trading.positions import Position
from coin_platform.trading.risk import RiskGuard, RiskState
from coin_platform_tests.trading.support import NOW, make_decision

CALM = RiskState(realized_pnl_today=0.0, last_order_at=None)


def check(config: RiskConfig, signal: str, quantity: float, position: float, state: RiskState = CALM, **kwargs):
    """Check an order of `quantity` for `signal` against a BTCUSDT (or kwargs symbol) position of `position`."""
    symbol, price = kwargs.get("symbol", "BTCUSDT"), kwargs.get("price", 50_000.0)
    decision = make_decision(symbol, signal, price)
    order = OrderRequest(decision.id, symbol, decision.action, quantity, signal.startswith("exit_"), price)
    return RiskGuard(config).check(decision, order, Position(symbol, position, price), state, NOW)


def test_within_limits_is_allowed():
    verdict = check(RiskConfig(), "enter_long", 0.002, 0.0)
    assert verdict.allowed and verdict.rule == ""


def test_kill_switch_refuses_everything_exits_included():
    config = RiskConfig(kill_switch=True)
    for signal, quantity, position in (("enter_long", 0.002, 0.0), ("exit_long", 0.002, 0.002)):
        verdict = check(config, signal, quantity, position)
        assert not verdict.allowed and verdict.rule == "kill_switch"
        assert verdict.reason.startswith("kill_switch: risk.kill_switch is on")


def test_notional_limit_names_the_resulting_position_and_the_limit():
    # 0.019 + 0.002 = 0.021 BTC × 50,000 = 1,050 USDT > 1,000 (the default)
    verdict = check(RiskConfig(), "enter_long", 0.002, 0.019)
    assert not verdict.allowed and verdict.rule == "max_position_notional"
    assert "0.021 × 50000 = 1050.00 USDT" in verdict.reason and "1000.00 USDT" in verdict.reason
    # short side counts by absolute value
    assert check(RiskConfig(), "enter_short", 0.002, -0.019).rule == "max_position_notional"


def test_per_symbol_notional_override():
    config = RiskConfig(max_position_notional_by_symbol={"BTCUSDT": 2_000.0})
    assert check(config, "enter_long", 0.002, 0.019).allowed
    refused = check(config, "enter_long", 0.002, 0.039)  # 0.041 × 50,000 = 2,050
    assert refused.rule == "max_position_notional" and "2000.00 USDT" in refused.reason
    other = check(config, "enter_long", 0.6, 0.0, symbol="ETHUSDT", price=2_000.0)  # 1,200 > default 1,000
    assert other.rule == "max_position_notional" and "1000.00 USDT" in other.reason


def test_quantity_limit_per_symbol():
    config = RiskConfig(max_position_quantity_by_symbol={"ETHUSDT": 0.5})
    verdict = check(config, "enter_long", 0.1, 0.45, symbol="ETHUSDT", price=1_000.0)  # 550 USDT, notional fine
    assert not verdict.allowed and verdict.rule == "max_position_quantity"
    assert "0.55" in verdict.reason and "0.5" in verdict.reason
    assert check(config, "enter_long", 0.5, 0.0, symbol="BTCUSDT", price=1_000.0).allowed  # no limit for BTCUSDT


def test_limits_do_not_block_reducing_a_position_already_above_them():
    # the limit was lowered under an open 0.03 BTC (1,500 USDT): closing must still work
    assert check(RiskConfig(), "exit_long", 0.03, 0.03).allowed


def test_daily_loss_limit_allows_only_reducing_orders():
    config = RiskConfig(daily_loss_limit_usdt=200.0)
    losing = RiskState(realized_pnl_today=-200.0, last_order_at=None)
    verdict = check(config, "enter_long", 0.002, 0.0, losing)
    assert not verdict.allowed and verdict.rule == "daily_loss_limit"
    assert "-200.00 USDT" in verdict.reason and "2024-03-01 UTC" in verdict.reason
    assert check(config, "enter_long", 0.002, 0.002, losing).rule == "daily_loss_limit"  # adding
    assert check(config, "exit_long", 0.002, 0.002, losing).allowed
    assert check(config, "enter_long", 0.002, 0.0, RiskState(-199.99, None)).allowed


def test_cooldown_refuses_new_exposure_but_not_exits():
    config = RiskConfig(cooldown_seconds=300)
    recent = RiskState(realized_pnl_today=0.0, last_order_at=NOW - dt.timedelta(seconds=120))
    verdict = check(config, "enter_long", 0.002, 0.0, recent)
    assert not verdict.allowed and verdict.rule == "cooldown"
    assert "120 s ago" in verdict.reason and "300 s cooldown" in verdict.reason
    assert check(config, "exit_long", 0.002, 0.002, recent).allowed
    assert check(config, "exit_short", 0.002, -0.002, recent).allowed
    assert check(config, "enter_long", 0.002, 0.0, RiskState(0.0, NOW - dt.timedelta(seconds=300))).allowed


@pytest.mark.parametrize("position", [0.002, -0.001])
def test_an_order_that_flips_or_adds_is_not_treated_as_reducing(position):
    # selling 0.004 against a 0.002 long ends 0.002 short: new exposure, so the cooldown applies
    recent = RiskState(realized_pnl_today=0.0, last_order_at=NOW - dt.timedelta(seconds=1))
    assert check(RiskConfig(), "enter_short", 0.004, position, recent).rule == "cooldown"
