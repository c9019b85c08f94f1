"""A decision-path run's ledger as a BacktestResult: round trips from its fills, equity per bar.

The fills are the trading store's (the live accounting: average entry, realized PnL net of fees,
one-way netting). A trade runs from flat to flat; a fill that flips the position closes one trade
(exit_reason "reverse") and opens the next with the rest, its fee split by quantity. An order that
only closes is an exit ("signal"). A position still open after the last bar is marked at the last
close without an exit fill ("end_of_data"): the ledger holds it open, as the live account would.
Each symbol's equity is its sleeve (initial_cash / symbols) plus its cash flows plus the open
position at the bar's close; the paper broker charges no funding, so the ledger has none.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from coin_platform.backtest.decision_path import DecisionPathRun
from coin_platform.backtest.result import EQUITY_SCHEMA, TOTAL_EQUITY_SCHEMA, TRADES_SCHEMA, BacktestResult
from coin_platform.core.time import UTC_MS

# A position this much smaller than the fill that left it is float residue: flat.
_DUST = 1e-12


def decision_path_result(run: DecisionPathRun, initial_cash: float, params: dict[str, Any]) -> BacktestResult:
    symbols = run.candles["symbol"].unique(maintain_order=True).to_list()
    sleeve = initial_cash / max(len(symbols), 1)
    fills = run.fills.sort("filled_at", "client_order_id", "seq").with_columns(
        pl.col("filled_at").cast(UTC_MS),
        signed=pl.when(pl.col("side") == "buy").then(pl.col("quantity")).otherwise(-pl.col("quantity")),
    )
    reduce_only = dict(zip(run.orders["client_order_id"], run.orders["reduce_only"], strict=True))
    trades = []
    for symbol in symbols:
        bars = run.candles.filter(pl.col("symbol") == symbol)
        trades += _round_trips(fills.filter(pl.col("symbol") == symbol), reduce_only, bars)
    equity = (
        pl.concat(
            [
                _sleeve_equity(run.candles.filter(pl.col("symbol") == s), fills.filter(pl.col("symbol") == s), sleeve)
                for s in symbols
            ]
        )
        if symbols
        else pl.DataFrame(schema=EQUITY_SCHEMA)
    )
    total = (
        equity.pivot(on="symbol", index="open_time", values="equity")
        .sort("open_time")
        .with_columns(pl.exclude("open_time").forward_fill().fill_null(sleeve))
        .select("open_time", equity=pl.sum_horizontal(pl.exclude("open_time")))
        .with_columns(drawdown=pl.col("equity") / pl.col("equity").cum_max() - 1.0)
        .cast(TOTAL_EQUITY_SCHEMA)
    )
    return BacktestResult(
        trades=pl.DataFrame(trades, schema=TRADES_SCHEMA),
        equity=equity,
        total_equity=total,
        initial_cash=initial_cash,
        params={**params, "decision_path": True, "orders": run.orders.height, "decisions": run.decisions.height},
    )


def _sleeve_equity(bars: pl.DataFrame, fills: pl.DataFrame, sleeve: float) -> pl.DataFrame:
    """Sleeve + cash flows of the fills so far + position × close, at every bar (a fill at a bar's open counts)."""
    flows = fills.select(
        "filled_at",
        cash=(-pl.col("signed") * pl.col("price") - pl.col("fee")).cum_sum(),
        position=pl.col("signed").cum_sum(),
    ).unique("filled_at", keep="last", maintain_order=True)
    marked = bars.select("symbol", "open_time", "close").join_asof(
        flows, left_on="open_time", right_on="filled_at", strategy="backward"
    )
    return marked.select(
        "open_time",
        "symbol",
        equity=sleeve + pl.col("cash").fill_null(0.0) + pl.col("position").fill_null(0.0) * pl.col("close"),
    ).cast(EQUITY_SCHEMA)


def _round_trips(fills: pl.DataFrame, reduce_only: dict[str, bool], bars: pl.DataFrame) -> list[dict]:
    trades: list[dict] = []
    open_trade: dict | None = None
    position = 0.0
    for fill in fills.to_dicts():
        change, price, fee = fill["signed"], fill["price"], fill["fee"]
        remaining = change
        if open_trade is not None and position * change < 0:  # reduces, closes or flips
            closed = min(abs(change), abs(position))
            share = closed / abs(change)
            direction = 1.0 if position > 0 else -1.0
            open_trade["exit_quantity"] += closed
            open_trade["exit_value"] += closed * price
            open_trade["fees"] += fee * share
            open_trade["gross"] += direction * closed * (price - open_trade["entry_price"])
            position += direction * -closed
            remaining = change + direction * closed
            if abs(position) <= _DUST * closed:
                position = 0.0
                reason = "signal" if reduce_only.get(fill["client_order_id"], False) else "reverse"
                trades.append(_closed(open_trade, fill["filled_at"], reason))
                open_trade = None
            fee *= 1 - share
        if abs(remaining) > _DUST * abs(change):
            if open_trade is None:
                open_trade = {
                    "symbol": fill["symbol"],
                    "side": "long" if remaining > 0 else "short",
                    "entry_time": fill["filled_at"],
                    "entry_price": price,
                    "size": 0.0,
                    "fees": 0.0,
                    "gross": 0.0,
                    "exit_quantity": 0.0,
                    "exit_value": 0.0,
                }
            held = abs(position)
            added = abs(remaining)
            open_trade["entry_price"] = (held * open_trade["entry_price"] + added * price) / (held + added)
            open_trade["size"] += added
            open_trade["fees"] += fee
            position += remaining
    if open_trade is not None and not bars.is_empty():
        last_close, last_time = bars["close"][-1], bars["open_time"][-1]
        direction = 1.0 if position > 0 else -1.0
        open_trade["exit_quantity"] += abs(position)
        open_trade["exit_value"] += abs(position) * last_close
        open_trade["gross"] += direction * abs(position) * (last_close - open_trade["entry_price"])
        trades.append(_closed(open_trade, last_time, "end_of_data"))
    return trades


def _closed(trade: dict, exit_time, reason: str) -> dict:
    pnl = trade["gross"] - trade["fees"]
    margin = trade["entry_price"] * trade["size"]
    return {
        "symbol": trade["symbol"],
        "side": trade["side"],
        "entry_time": trade["entry_time"],
        "entry_price": trade["entry_price"],
        "exit_time": exit_time,
        "exit_price": trade["exit_value"] / trade["exit_quantity"],
        "size": trade["size"],
        "fees": trade["fees"],
        "funding": 0.0,
        "pnl": pnl,
        "return": pnl / margin if margin else 0.0,
        "exit_reason": reason,
        "leverage": 1.0,
        "liquidation_price": None,
    }
