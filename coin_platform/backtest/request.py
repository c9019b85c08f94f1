"""What one backtest run is asked to do, resolved against config.yaml's defaults and checked.

The Dagster run config and the HTTP API both carry a `BacktestRequest` (every field optional:
absent means config.yaml's `backtest:` default, or the trading section's fee and slippage), and
both resolve it with `resolve_request`, so a bad value fails the same way wherever it came from:
a ConfigError naming `backtest.<field>`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from coin_platform.core.intervals import SUPPORTED_INTERVALS, normalize_interval
from coin_platform.settings import ConfigError, PlatformConfig

Cost = Annotated[float, Field(ge=0, lt=0.1, allow_inf_nan=False)]


class BacktestRequest(BaseModel):
    """A backtest's parameters as a user gives them; None = the configured default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    symbols: list[str] | None = Field(default=None, min_length=1)
    interval: str | None = None
    start: dt.date | None = None
    end: dt.date | None = None  # inclusive
    initial_cash: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    sizing: Literal["equity_fraction", "fixed_notional"] | None = None
    fraction: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] | None = None
    stop_loss: Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)] | None = None
    take_profit: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    leverage: Annotated[float, Field(ge=1, le=125, allow_inf_nan=False)] | None = None
    funding: bool | None = None
    fee: Cost | None = None
    slippage: Cost | None = None
    # False: the strategy's signals through the engine; True: through the scorer and risk guard, as live.
    decision_path: bool = False


@dataclass(frozen=True)
class ResolvedBacktest:
    """A request with every default filled in and every value checked."""

    strategy: str
    symbols: tuple[str, ...]
    interval: str
    start: dt.date
    end: dt.date  # inclusive
    initial_cash: float
    sizing: Literal["equity_fraction", "fixed_notional"]
    fraction: float
    notional: float  # trading.order_notional_usdt, used by fixed_notional sizing
    stop_loss: float | None
    take_profit: float | None
    leverage: float
    funding: bool
    fee: float
    slippage: float
    decision_path: bool

    @property
    def range_start(self) -> dt.datetime:
        return dt.datetime(self.start.year, self.start.month, self.start.day, tzinfo=dt.UTC)

    @property
    def range_end(self) -> dt.datetime:
        """The last instant of the range (the end day included)."""
        after = self.end + dt.timedelta(days=1)
        return dt.datetime(after.year, after.month, after.day, tzinfo=dt.UTC) - dt.timedelta(milliseconds=1)


def parse_request(values: dict) -> BacktestRequest:
    """A BacktestRequest from plain values (run config, JSON), or ConfigError naming the field."""
    try:
        return BacktestRequest.model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(
            f"backtest.{'.'.join(str(part) for part in item['loc'])}: {item['msg']}" for item in exc.errors()
        )
        raise ConfigError(problems) from None


def resolve_request(
    request: BacktestRequest, strategy: str, config: PlatformConfig, today: dt.date
) -> ResolvedBacktest:
    """Fill the defaults in and check what depends on the config and the date."""
    names = [s.name for s in config.strategies]
    if strategy not in names:
        raise ConfigError(f"backtest.strategy: {strategy!r} is not a configured strategy ({', '.join(names)})")
    defaults = config.backtest
    symbols = tuple(s.strip().upper() for s in request.symbols) if request.symbols else config.symbols
    if unknown := [s for s in symbols if s not in config.symbols]:
        raise ConfigError(f"backtest.symbols: {unknown} are not configured symbols ({', '.join(config.symbols)})")
    try:
        interval = normalize_interval(request.interval) if request.interval else defaults.interval
    except ValueError:
        interval = None
    if interval not in SUPPORTED_INTERVALS:
        raise ConfigError(f"backtest.interval: {request.interval!r} is not one of {list(SUPPORTED_INTERVALS)}")
    end = request.end or today - dt.timedelta(days=1)
    start = request.start or max(config.history_start, end - dt.timedelta(days=defaults.days - 1))
    if end > today:
        raise ConfigError(f"backtest.end: {end} is in the future (today is {today} UTC)")
    if start > end:
        raise ConfigError(f"backtest.start: {start} is after the end {end}")
    return ResolvedBacktest(
        strategy=strategy,
        symbols=symbols,
        interval=interval,
        start=start,
        end=end,
        initial_cash=_pick(request.initial_cash, defaults.initial_cash),
        sizing=request.sizing or defaults.sizing,
        fraction=_pick(request.fraction, defaults.fraction),
        notional=config.trading.order_notional_usdt,
        stop_loss=_pick(request.stop_loss, defaults.stop_loss),
        take_profit=_pick(request.take_profit, defaults.take_profit),
        leverage=_pick(request.leverage, defaults.leverage),
        funding=_pick(request.funding, defaults.funding),
        fee=_pick(request.fee, config.trading.fee_rate),
        slippage=_pick(request.slippage, config.trading.slippage_rate),
        decision_path=request.decision_path,
    )


def _pick(value, default):
    return default if value is None else value
