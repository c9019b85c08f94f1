"""A strategy's backtest gated by a model against the same backtest ungated, after fees.

The gate keeps an entry signal only where the model said yes to that candidate (its symbol, candle
and signal); exits always stay, as inference always acts on them. Both runs see the same candles,
warm-up and costs, and trade only inside [start, end], so the difference is the gate alone.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl

from coin_platform.backtest.engine import simulate, strategy_signals
from coin_platform.backtest.result import BacktestResult
from coin_platform.strategies import Strategy

ENTRY_SIGNALS = ("enter_long", "enter_short")


@dataclass(frozen=True)
class GatedComparison:
    gated: BacktestResult
    ungated: BacktestResult
    entries_offered: int
    entries_accepted: int

    def summary(self) -> dict[str, float | int | None]:
        gated, ungated = self.gated.metrics, self.ungated.metrics
        return {
            "gated_return_pct": gated["total_return_pct"],
            "ungated_return_pct": ungated["total_return_pct"],
            "gated_trades": self.gated.trades.height,
            "ungated_trades": self.ungated.trades.height,
            "gated_max_drawdown_pct": gated.get("max_drawdown_pct"),
            "ungated_max_drawdown_pct": ungated.get("max_drawdown_pct"),
            "entries_offered": self.entries_offered,
            "entries_accepted": self.entries_accepted,
        }


def gate_signals(signals: pl.DataFrame, accepted: pl.DataFrame) -> pl.DataFrame:
    """`signals` (symbol, open_time, the four signals) with the entries not in `accepted` (symbol,
    open_time, signal) switched off."""
    flags = (
        accepted.select("symbol", "open_time", "signal")
        .unique()
        .with_columns(pl.lit(True).alias("accepted"))
        .pivot(on="signal", index=["symbol", "open_time"], values="accepted")
    )
    for name in ENTRY_SIGNALS:
        if name not in flags.columns:
            flags = flags.with_columns(pl.lit(None, pl.Boolean).alias(name))
    flags = flags.select(
        "symbol",
        pl.col("open_time").cast(signals.schema["open_time"]),
        *[pl.col(n).alias(f"_{n}") for n in ENTRY_SIGNALS],
    )
    joined = signals.join(flags, on=["symbol", "open_time"], how="left")
    return joined.with_columns(*[(pl.col(n) & pl.col(f"_{n}").fill_null(False)).alias(n) for n in ENTRY_SIGNALS]).drop(
        *[f"_{n}" for n in ENTRY_SIGNALS]
    )


def gated_backtest(
    candles: pl.DataFrame,
    strategy: Strategy,
    accepted: pl.DataFrame,
    *,
    start: dt.datetime,
    end: dt.datetime,
    interval: str,
    fee: float,
    slippage: float = 0.0002,
    initial_cash: float = 10_000.0,
) -> GatedComparison:
    """Backtest `strategy` on `candles` (symbol, open_time, OHLCV, warm-up included) over [start, end], with
    and without the gate of `accepted` entries."""
    signals, _ = strategy_signals(candles, strategy, interval=interval)
    in_range = signals.filter(pl.col("open_time").is_between(start, end))
    gated = gate_signals(in_range, accepted)
    offered = sum(int(in_range[n].sum()) for n in ENTRY_SIGNALS)
    kept = sum(int(gated[n].sum()) for n in ENTRY_SIGNALS)
    costs = {"fee": fee, "slippage": slippage, "initial_cash": initial_cash}
    return GatedComparison(simulate(gated, **costs), simulate(in_range, **costs), offered, kept)
