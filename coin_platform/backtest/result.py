"""What a backtest returns: trades, equity per symbol and in total, and metrics computed on first use."""

from __future__ import annotations

from functools import cached_property
from typing import Any, Protocol

import polars as pl

from coin_platform.core.time import UTC_MS

# Why a trade ended, in the engine's codes order (its kernel records the index).
EXIT_REASONS = ("signal", "reverse", "stop_loss", "take_profit", "liquidation", "end_of_data")
SIDES = ("long", "short")

TRADES_SCHEMA: dict[str, pl.DataType] = {
    "symbol": pl.String(),
    "side": pl.String(),
    "entry_time": UTC_MS,
    "entry_price": pl.Float64(),
    "exit_time": UTC_MS,
    "exit_price": pl.Float64(),
    "size": pl.Float64(),
    "fees": pl.Float64(),
    "funding": pl.Float64(),
    "pnl": pl.Float64(),
    "return": pl.Float64(),
    "exit_reason": pl.String(),
    "leverage": pl.Float64(),
    "liquidation_price": pl.Float64(),
}
EQUITY_SCHEMA: dict[str, pl.DataType] = {"open_time": UTC_MS, "symbol": pl.String(), "equity": pl.Float64()}
TOTAL_EQUITY_SCHEMA: dict[str, pl.DataType] = {"open_time": UTC_MS, "equity": pl.Float64(), "drawdown": pl.Float64()}


class ResultFrames(Protocol):
    """Builds a result's frames on first access (the engine's kernel arrays, for instance)."""

    symbols: list[str]

    def trades(self) -> pl.DataFrame: ...

    def equity(self) -> pl.DataFrame: ...

    def total_equity(self) -> pl.DataFrame: ...


class BacktestResult:
    """One backtest over one or more symbols, each trading its own sleeve of `initial_cash / n_symbols`.

    trades        one row per round trip (TRADES_SCHEMA): fees are both sides' in USDT, funding is
                  + received / − paid, pnl is net (gross − fees + funding), return is pnl / margin at entry;
                  liquidation_price is null where no price liquidates the position
    equity        per symbol and bar: the sleeve marked to market at the bar's close
    total_equity  per bar: the sum of the sleeves, and drawdown from the running peak (a fraction ≤ 0)
    params        the run's parameters, for reports

    `BacktestResult(trades=..., equity=..., total_equity=..., initial_cash=...)` holds ready frames;
    `BacktestResult.lazy(frames, ...)` builds each frame from `frames` on first access and keeps it
    (the engine's way: most of a run's cost would otherwise be frames nobody reads). Read-only.
    """

    def __init__(
        self,
        trades: pl.DataFrame,
        equity: pl.DataFrame,
        total_equity: pl.DataFrame,
        initial_cash: float,
        params: dict[str, Any] | None = None,
    ) -> None:
        self.__dict__.update(
            trades=trades,
            equity=equity,
            total_equity=total_equity,
            initial_cash=initial_cash,
            params={} if params is None else params,
            _frames=None,
        )

    @classmethod
    def lazy(cls, frames: ResultFrames, initial_cash: float, params: dict[str, Any] | None = None) -> BacktestResult:
        """A result whose trades, equity and total_equity `frames` builds when first read."""
        result = cls.__new__(cls)
        result.__dict__.update(initial_cash=initial_cash, params={} if params is None else params, _frames=frames)
        return result

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"BacktestResult is read-only (cannot set {name})")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"BacktestResult is read-only (cannot delete {name})")

    def __repr__(self) -> str:
        return f"BacktestResult(symbols={self.symbols!r}, initial_cash={self.initial_cash!r}, params={self.params!r})"

    # Lazy results fill these on first access; ready frames sit in the instance's __dict__ and shadow them.
    @cached_property
    def trades(self) -> pl.DataFrame:
        return self._frames.trades()

    @cached_property
    def equity(self) -> pl.DataFrame:
        return self._frames.equity()

    @cached_property
    def total_equity(self) -> pl.DataFrame:
        return self._frames.total_equity()

    @property
    def symbols(self) -> list[str]:
        if self._frames is not None:
            return list(self._frames.symbols)
        return self.equity.get_column("symbol").unique(maintain_order=True).to_list()

    @cached_property
    def metrics(self) -> dict[str, float | int | None]:
        """The whole portfolio's metrics (coin_platform.backtest.metrics), over total_equity."""
        from coin_platform.backtest.metrics import compute_metrics

        return compute_metrics(self.trades, self.total_equity.select("open_time", "equity"), self.initial_cash)

    @cached_property
    def metrics_by_symbol(self) -> pl.DataFrame:
        """One row per symbol: its sleeve's metrics over its own trades and equity."""
        from coin_platform.backtest.metrics import compute_metrics

        sleeve = self.initial_cash / len(self.symbols)
        rows = [
            {
                "symbol": symbol,
                **compute_metrics(
                    self.trades.filter(pl.col("symbol") == symbol),
                    self.equity.filter(pl.col("symbol") == symbol).select("open_time", "equity"),
                    sleeve,
                ),
            }
            for symbol in self.symbols
        ]
        return pl.DataFrame(rows, infer_schema_length=None)
