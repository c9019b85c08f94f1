"""Live/backtest parity: does a backtest of the period the paper broker traded reproduce its orders?

The backtest side is `run_decision_path` over the stored candles with the live config, replaying
each decision at the moment the live path acted on it (from the trading store), so cooldowns and
decision ages elapse alike. Orders are matched by client order id (the decision id, which is a
digest of the candidate: strategy, symbol, interval, candle and signal), and each pair must agree:

- same symbol, side and candle (they do when the ids match) and the same quantity (1e-9 relative);
- the live fill price, with the paper slippage taken off, lies within the low..high of the candle
  its fill time falls in. That is the documented difference between the conventions: live paper
  fills at the last trade price when the order arrives, the backtest at that candle's open.

Every order on one side only is a difference, with the reason the other side gives for it (its
refusal rule, or that it never saw the decision).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import polars as pl

from coin_platform.backtest.decision_path import DecisionPathRun, decision_candles, run_decision_path
from coin_platform.core.intervals import interval_ms
from coin_platform.settings import PlatformConfig
from coin_platform.strategies import Strategy

QUANTITY_TOLERANCE = 1e-9
# Float rounding of a price compared with a candle's range after the slippage is taken off.
PRICE_TOLERANCE = 1e-9


@dataclass(frozen=True)
class ParityReport:
    """Order-for-order comparison of the live trading store with a decision-path backtest of its period."""

    start: dt.datetime
    end: dt.datetime
    live_orders: int
    backtest_orders: int
    matched: int
    differences: pl.DataFrame  # client_order_id, symbol, strategy, signal, candle, kind, reason

    @property
    def passed(self) -> bool:
        return self.differences.is_empty()


_DIFFERENCE_SCHEMA = {
    "client_order_id": pl.String,
    "symbol": pl.String,
    "strategy": pl.String,
    "signal": pl.String,
    "kind": pl.String,
    "reason": pl.String,
}


def live_decision_times(orders: pl.DataFrame, rejections: pl.DataFrame) -> dict[str, dt.datetime]:
    """When the live path acted on each decision it recorded: the `now` its execution ran with."""
    times = {row["decision_id"]: row["created_at"] for row in rejections.select("decision_id", "created_at").to_dicts()}
    times.update(
        {row["client_order_id"]: row["created_at"] for row in orders.select("client_order_id", "created_at").to_dicts()}
    )
    return times


def backtest_live_period(
    candles: Mapping[str, pl.DataFrame],
    strategies: Sequence[Strategy],
    config: PlatformConfig,
    *,
    live_orders: pl.DataFrame,
    live_rejections: pl.DataFrame,
) -> DecisionPathRun | None:
    """The decision path over the period the live orders traded, from the candle of the first one
    (earlier candles are history), each decision replayed at the moment live acted on it.
    None when no live order is a candidate of `strategies` on `candles`."""
    candle_of = decision_candles(candles, strategies)
    traded = [candle_of[order_id] for order_id in live_orders["client_order_id"] if order_id in candle_of]
    if not traded:
        return None
    return run_decision_path(
        candles,
        strategies,
        config,
        start=min(traded),
        decision_times=live_decision_times(live_orders, live_rejections),
    )


def compare_with_live(
    backtest: DecisionPathRun,
    live_orders: pl.DataFrame,
    live_fills: pl.DataFrame,
    live_rejections: pl.DataFrame,
    *,
    slippage_rate: float,
    start: dt.datetime,
    end: dt.datetime,
) -> ParityReport:
    """Compare the live orders created in [start, end] with the backtest's orders of the same period."""
    in_period = (pl.col("created_at") >= start) & (pl.col("created_at") <= end)
    live = live_orders.filter(in_period & (pl.col("status") != "PENDING"))
    ours = backtest.orders.filter(in_period)
    ours_by_id = {row["client_order_id"]: row for row in ours.to_dicts()}
    live_by_id = {row["client_order_id"]: row for row in live.to_dicts()}
    executions = dict(zip(backtest.executions["decision_id"], backtest.executions["reason"], strict=True))
    live_refusals = dict(zip(live_rejections["decision_id"], live_rejections["reason"], strict=True))
    fills = live_fills.group_by("client_order_id").agg(pl.col("filled_at").min(), pl.col("price").mean())
    fill_of = {row["client_order_id"]: row for row in fills.to_dicts()}

    differences = []

    def differ(order: dict, kind: str, reason: str) -> None:
        differences.append(
            {key: order[key] for key in ("client_order_id", "symbol", "strategy", "signal")}
            | {"kind": kind, "reason": reason}
        )

    matched = 0
    for order_id, order in live_by_id.items():
        theirs = ours_by_id.get(order_id)
        if theirs is None:
            why = executions.get(order_id, "the backtest made no such decision (no candidate, or it held)")
            differ(order, "live_only", f"live {order['status']}; backtest: {why}")
            continue
        problem = _pair_problem(
            order, theirs, fill_of.get(order_id), backtest.candles, backtest.interval, slippage_rate
        )
        if problem:
            differ(order, "mismatch", problem)
        else:
            matched += 1
    for order_id, order in ours_by_id.items():
        if order_id not in live_by_id:
            why = live_refusals.get(order_id, "the live path recorded no such decision")
            differ(order, "backtest_only", f"backtest {order['status']}; live: {why}")
    return ParityReport(
        start=start,
        end=end,
        live_orders=len(live_by_id),
        backtest_orders=len(ours_by_id),
        matched=matched,
        differences=pl.DataFrame(differences, schema=_DIFFERENCE_SCHEMA),
    )


def _pair_problem(
    live: dict, ours: dict, fill: dict | None, candles: pl.DataFrame, interval: str, slippage_rate: float
) -> str | None:
    """Why a live order and the backtest's order of the same decision disagree, or None."""
    for key in ("symbol", "side", "status"):
        if live[key] != ours[key]:
            return f"{key}: live {live[key]}, backtest {ours[key]}"
    if abs(live["quantity"] - ours["quantity"]) > QUANTITY_TOLERANCE * max(abs(live["quantity"]), 1.0):
        return f"quantity: live {live['quantity']:.12g}, backtest {ours['quantity']:.12g}"
    if fill is None:
        return None  # neither filled (both rejected by the broker alike)
    market = fill["price"] / (1 + slippage_rate if live["side"] == "buy" else 1 - slippage_rate)
    bar = candles.filter((pl.col("symbol") == live["symbol"]) & (pl.col("open_time") <= fill["filled_at"])).tail(1)
    if bar.is_empty() or fill["filled_at"] >= bar["open_time"][0] + _step(interval):
        return f"live fill at {fill['filled_at'].isoformat()} is in no stored {interval} candle"
    low, high = bar["low"][0], bar["high"][0]
    if not low * (1 - PRICE_TOLERANCE) <= market <= high * (1 + PRICE_TOLERANCE):
        return (
            f"live fill {fill['price']:.10g} (market {market:.10g}) is outside the {bar['open_time'][0].isoformat()} "
            f"candle's range {low:.10g}..{high:.10g}; backtest filled at {ours['average_price']:.10g}"
        )
    return None


def _step(interval: str) -> dt.timedelta:
    return dt.timedelta(milliseconds=interval_ms(interval))
