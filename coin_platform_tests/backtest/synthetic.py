"""A tiny seeded backtest in the engine's result contract, for metrics and report tests.

Random-walk 1m candles per symbol; trades alternate long and short, entering at one
bar's open and leaving `hold` bars later at that bar's open, sized to half the sleeve
at 1x; fees on both sides. Each symbol's sleeve equity is marked at every close, so
trades, equity and total equity agree with each other the way the engine's do.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from coin_platform.backtest.metrics import MetricValue, compute_metrics, metrics_by_symbol
from coin_platform.core.time import UTC_MS

START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
BAR = dt.timedelta(minutes=1)
FEE_RATE = 0.0005


@dataclass(frozen=True)
class SyntheticResult:
    """The attributes of the engine's result that reports read (BacktestResultLike)."""

    trades: pl.DataFrame
    equity: pl.DataFrame
    total_equity: pl.DataFrame
    metrics: Mapping[str, MetricValue]
    metrics_by_symbol: pl.DataFrame
    params: Mapping[str, object] = field(default_factory=dict)


def _candles(symbol: str, bars: int, rng: np.random.Generator) -> pl.DataFrame:
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 2e-3, bars)))
    open_ = np.r_[close[0], close[:-1]]
    wick = np.abs(rng.normal(0.0, 1e-3, (2, bars)))
    return pl.DataFrame(
        {
            "open_time": pl.datetime_range(START, START + (bars - 1) * BAR, BAR, eager=True).cast(UTC_MS),
            "symbol": symbol,
            "open": open_,
            "high": np.maximum(open_, close) * (1 + wick[0]),
            "low": np.minimum(open_, close) * (1 - wick[1]),
            "close": close,
        }
    )


def _trades_and_equity(candles: pl.DataFrame, cash: float, every: int, hold: int) -> tuple[pl.DataFrame, np.ndarray]:
    open_, close = candles["open"].to_numpy(), candles["close"].to_numpy()
    entries = np.arange(1, candles.height - hold, every)
    exits = entries + hold
    sign = np.where(np.arange(len(entries)) % 2 == 0, 1.0, -1.0)
    entry_price, exit_price = open_[entries], open_[exits]
    size = cash * 0.5 / entry_price
    entry_fee, exit_fee = FEE_RATE * size * entry_price, FEE_RATE * size * exit_price
    pnl = sign * size * (exit_price - entry_price) - entry_fee - exit_fee
    times = candles["open_time"]
    trades = pl.DataFrame(
        {
            "symbol": candles["symbol"][0],
            "side": np.where(sign > 0, "long", "short"),
            "entry_time": times.gather(entries),
            "entry_price": entry_price,
            "exit_time": times.gather(exits),
            "exit_price": exit_price,
            "size": size,
            "fees": entry_fee + exit_fee,
            "funding": 0.0,
            "pnl": pnl,
            "return": pnl / (size * entry_price),
            "exit_reason": "signal",
        }
    )
    realized = np.zeros(candles.height)
    np.add.at(realized, exits, pnl)
    equity = cash + np.cumsum(realized)
    for entry, exit_, direction, quantity, price, fee in zip(
        entries, exits, sign, size, entry_price, entry_fee, strict=True
    ):
        equity[entry:exit_] += direction * quantity * (close[entry:exit_] - price) - fee
    return trades, equity


def synthetic_backtest(
    symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT"),
    *,
    bars: int = 2_000,
    seed: int = 7,
    every: int = 50,
    hold: int = 30,
    cash_per_symbol: float = 10_000.0,
) -> tuple[SyntheticResult, pl.DataFrame]:
    """(result, candles) of a seeded backtest over `bars` 1m bars of each symbol."""
    rng = np.random.default_rng(seed)
    candles = pl.concat([_candles(symbol, bars, rng) for symbol in symbols])
    trade_parts, equity_parts = [], []
    for symbol in symbols:
        symbol_candles = candles.filter(pl.col("symbol") == symbol)
        trades, equity = _trades_and_equity(symbol_candles, cash_per_symbol, every, hold)
        trade_parts.append(trades)
        equity_parts.append(symbol_candles.select("open_time", "symbol", equity=pl.Series(equity)))
    trades = pl.concat(trade_parts).sort("entry_time", "symbol")
    equity = pl.concat(equity_parts)
    total = (
        equity.group_by("open_time")
        .agg(pl.col("equity").sum())
        .sort("open_time")
        .with_columns(drawdown=pl.col("equity") / pl.col("equity").cum_max() - 1)
    )
    cash = {symbol: cash_per_symbol for symbol in symbols}
    result = SyntheticResult(
        trades=trades,
        equity=equity,
        total_equity=total,
        metrics=compute_metrics(trades, total.select("open_time", "equity"), cash_per_symbol * len(symbols)),
        metrics_by_symbol=metrics_by_symbol(trades, equity, cash, candles=candles),
        params={"strategy": "alternating", "every": every, "hold": hold, "seed": seed},
    )
    return result, candles
