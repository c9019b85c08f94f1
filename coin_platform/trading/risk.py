"""The risk guard: every order passes it before any broker sees it.

A refusal names the rule and the numbers that broke it, so the stored reason explains itself
without the config at hand.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from coin_platform.events.schemas import Decision
from coin_platform.settings import RiskConfig
from coin_platform.trading.orders import OrderRequest
from coin_platform.trading.positions import Position, signed_quantity


@dataclass(frozen=True)
class RiskState:
    """What the guard needs from the trading record besides the position."""

    realized_pnl_today: float  # USDT, net of fees, every symbol, since 00:00 UTC of `now`
    last_order_at: dt.datetime | None  # the symbol's latest order a broker accepted or may have (pending)
    # Signed quantity of the symbol's pending orders: counted as filled, as the exchange may have filled them.
    pending_quantity: float = 0.0


@dataclass(frozen=True)
class RiskVerdict:
    allowed: bool
    reason: str
    rule: str = ""  # the refusing rule (kill_switch, daily_loss_limit, cooldown, max_position_*); "" if allowed


class RiskGuard:
    """Checks one intended order against the RiskConfig.

    Rules, in order:
    - kill_switch: refuses every order, exits included (it means "send nothing").
    - An order that only reduces the position (an exit, a reduce-only order) is then allowed:
      refusing it would keep risk on, not take it off.
    - daily_loss_limit: once today's (UTC) realized PnL is at or below -daily_loss_limit_usdt,
      only such reducing orders pass.
    - cooldown: no new exposure on a symbol within cooldown_seconds of its previous order;
      exits and reduce-only orders are still allowed.
    - max_position_notional: |position after the order| × the decision's price must stay within the
      symbol's override or the default limit. The position includes pending orders, as if filled.
    - max_position_quantity: |position after the order| must stay within the symbol's limit, if it has one.
    """

    def __init__(self, config: RiskConfig) -> None:
        self.config = config

    def check(
        self,
        decision: Decision,
        order: OrderRequest,
        position: Position,
        state: RiskState,
        now: dt.datetime,
    ) -> RiskVerdict:
        config = self.config
        symbol = order.symbol
        if config.kill_switch:
            return _refuse("kill_switch", f"risk.kill_switch is on; {symbol} {order.side} not sent")

        held = position.quantity + state.pending_quantity
        after = held + signed_quantity(order.side, order.quantity)
        if abs(after) < abs(held) and after * held >= 0:
            return RiskVerdict(True, f"reduces the {symbol} position from {held:g} to {after:g}")

        if state.realized_pnl_today <= -config.daily_loss_limit_usdt:
            return _refuse(
                "daily_loss_limit",
                f"realized PnL today ({now.astimezone(dt.UTC):%Y-%m-%d} UTC) is {state.realized_pnl_today:.2f} USDT, "
                f"at or below -{config.daily_loss_limit_usdt:.2f} USDT; only orders that reduce a position pass",
            )

        if state.last_order_at is not None:
            elapsed = (now - state.last_order_at).total_seconds()
            if elapsed < config.cooldown_seconds:
                return _refuse(
                    "cooldown",
                    f"previous {symbol} order was {elapsed:.0f} s ago ({state.last_order_at.isoformat()}), "
                    f"within the {config.cooldown_seconds} s cooldown",
                )

        price = decision.price
        notional = abs(after) * price
        notional_limit = config.max_position_notional_by_symbol.get(symbol, config.max_position_notional_usdt)
        if notional > notional_limit:
            return _refuse(
                "max_position_notional",
                f"{symbol} position after the order would be {abs(after):g} × {price:g} = {notional:.2f} USDT, "
                f"above the limit of {notional_limit:.2f} USDT",
            )

        quantity_limit = config.max_position_quantity_by_symbol.get(symbol)
        if quantity_limit is not None and abs(after) > quantity_limit:
            return _refuse(
                "max_position_quantity",
                f"{symbol} position after the order would be {abs(after):g}, above the limit of {quantity_limit:g}",
            )

        return RiskVerdict(True, f"{symbol} position after the order {after:g} ({notional:.2f} USDT) within limits")


def _refuse(rule: str, detail: str) -> RiskVerdict:
    return RiskVerdict(False, f"{rule}: {detail}", rule)
