"""What one backtest run is asked to do, resolved against config.yaml's defaults and checked.

`BacktestOverrides` is what a run's config carries: every field optional, and a field left out (or a null
`stop_loss`, `take_profit`, `fee` or `slippage`) takes config.yaml's `backtest:` default, or the trading
section's fee and slippage. `BacktestRequest` adds the strategy, the run's partition: it is what the client
sends and what the HTTP API accepts. Both are this one model, so the UI's run config, the client and the
API check a value the same way, and `resolve_request` fills the defaults in and checks what depends on the
configuration and the date, failing with a ConfigError naming `backtest.<field>`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import MISSING, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from coin_platform.core.intervals import SUPPORTED_INTERVALS, normalize_interval
from coin_platform.core.symbols import is_binance_symbol
from coin_platform.settings import BacktestConfig, ConfigError, PlatformConfig, Rate, StrategyConfig

# The Dagster job a backtest runs as, and its one asset (whose config the overrides are).
BACKTEST_JOB = "backtest_job"
REPORT_ASSET = "backtest_report"


def _iso_date(value: object) -> object:
    """A JSON date is a `YYYY-MM-DD` string; strict mode would refuse any string, so it is parsed here."""
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value) if len(value) == 10 else value
        except ValueError:
            return value  # the date type's own error names the field
    return value


IsoDate = Annotated[dt.date, BeforeValidator(_iso_date)]


def _type_of(model: type[BaseModel], name: str) -> Any:
    """The type and bounds of `model.<name>`: a request is held to what config.yaml may say."""
    field = model.model_fields[name]
    return Annotated[field.annotation, *field.metadata] if field.metadata else field.annotation


def symbol_list(symbol: Any) -> Any:
    """A request's symbols: at least one, none twice."""
    return Annotated[list[symbol], Field(min_length=1, json_schema_extra={"uniqueItems": True})]


class BacktestOverrides(BaseModel):
    """A backtest's parameters that override config.yaml's `backtest:` defaults; what is left out keeps them.

    Types and bounds are checked here; what depends on the configuration and the date (configured symbols,
    start before end, nothing after today) `resolve_request` checks. Defaults when left out: config.yaml's
    `backtest:` section (the trading section's fee and slippage), all configured symbols, and the last
    `backtest.days` days up to yesterday.
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    symbols: symbol_list(str) | MISSING = MISSING
    interval: str | MISSING = MISSING
    start: IsoDate | MISSING = Field(MISSING, description="first UTC day (YYYY-MM-DD)")
    end: IsoDate | MISSING = Field(MISSING, description="last UTC day (YYYY-MM-DD, inclusive), at most today")
    initial_cash: _type_of(BacktestConfig, "initial_cash") | MISSING = MISSING
    sizing: _type_of(BacktestConfig, "sizing") | MISSING = MISSING
    fraction: _type_of(BacktestConfig, "fraction") | MISSING = MISSING
    stop_loss: _type_of(BacktestConfig, "stop_loss") | MISSING = MISSING
    take_profit: _type_of(BacktestConfig, "take_profit") | MISSING = MISSING
    leverage: _type_of(BacktestConfig, "leverage") | MISSING = MISSING
    funding: bool | MISSING = MISSING
    fee: Rate | None | MISSING = MISSING
    slippage: Rate | None | MISSING = MISSING
    decision_path: bool | MISSING = Field(
        MISSING, description="false: the strategy's signals only; true: through the scorer and risk guard as live"
    )

    @field_validator("symbols")
    @classmethod
    def _binance_symbols(cls, symbols: list[str]) -> list[str]:
        for symbol in symbols:
            if not is_binance_symbol(symbol):
                raise ValueError(f"{symbol!r} is not a Binance symbol like BTCUSDT")
        if len(set(symbols)) != len(symbols):
            raise ValueError("a symbol is listed twice")
        return symbols

    @field_validator("interval")
    @classmethod
    def _supported_interval(cls, interval: str) -> str:
        if normalize_interval(interval) != interval or interval not in SUPPORTED_INTERVALS:
            raise ValueError(f"{interval!r} not among {list(SUPPORTED_INTERVALS)}")
        return interval

    def overrides(self) -> dict[str, Any]:
        """The fields given (the strategy aside), as JSON values: dates as YYYY-MM-DD."""
        return self.model_dump(mode="json", exclude={"strategy"})


class BacktestRequest(BacktestOverrides):
    """One backtest: the strategy (the run's partition) and the config.yaml `backtest:` defaults it overrides."""

    strategy: _type_of(StrategyConfig, "name") = Field(description="a configured, enabled strategy name")

    def run_config(self) -> dict[str, Any]:
        """`backtest_job`'s run config: the overrides as the asset's config."""
        return {"ops": {REPORT_ASSET: {"config": self.overrides()}}}


@dataclass(frozen=True)
class ResolvedBacktest:
    """A request with every default filled in and every value checked."""

    strategy: str | None  # None for a sweep, which names a kind
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


def parse_request(values: dict) -> BacktestOverrides:
    """BacktestOverrides from plain values (run config, JSON), or ConfigError naming the field."""
    try:
        return BacktestOverrides.model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(
            f"backtest.{'.'.join(str(part) for part in item['loc'])}: {item['msg']}" for item in exc.errors()
        )
        raise ConfigError(problems) from None


def resolve_request(
    request: BacktestOverrides, strategy: str | None, config: PlatformConfig, today: dt.date
) -> ResolvedBacktest:
    """Fill the defaults in and check what depends on the config and the date (and `strategy`, when named)."""
    names = [s.name for s in config.strategies]
    if strategy is not None and strategy not in names:
        raise ConfigError(f"backtest.strategy: {strategy!r} is not a configured strategy ({', '.join(names)})")
    defaults = config.backtest
    # By default the live symbols; a retired one keeps its history and can be named.
    symbols = tuple(_pick(request.symbols, config.symbols))
    if unknown := [s for s in symbols if s not in config.all_symbols]:
        raise ConfigError(f"backtest.symbols: {unknown} are not configured symbols ({', '.join(config.all_symbols)})")
    interval = _pick(request.interval, defaults.interval)
    end = _pick(request.end, today - dt.timedelta(days=1))
    if end > today:
        raise ConfigError(f"backtest.end: {end} is in the future (today is {today} UTC)")
    if end < config.history_start:
        raise ConfigError(f"backtest.end: {end} is before the history starts ({config.history_start})")
    start = _pick(request.start, end - dt.timedelta(days=min(defaults.days - 1, (end - config.history_start).days)))
    if start > end:
        raise ConfigError(f"backtest.start: {start} is after the end {end}")
    return ResolvedBacktest(
        strategy=strategy,
        symbols=symbols,
        interval=interval,
        start=start,
        end=end,
        initial_cash=_pick(request.initial_cash, defaults.initial_cash),
        sizing=_pick(request.sizing, defaults.sizing),
        fraction=_pick(request.fraction, defaults.fraction),
        notional=config.trading.order_notional_usdt,
        stop_loss=_pick(request.stop_loss, defaults.stop_loss),
        take_profit=_pick(request.take_profit, defaults.take_profit),
        leverage=_pick(request.leverage, defaults.leverage),
        funding=_pick(request.funding, defaults.funding),
        fee=_pick(request.fee, config.trading.fee_rate),
        slippage=_pick(request.slippage, config.trading.slippage_rate),
        decision_path=_pick(request.decision_path, False),
    )


def _pick(value, default):
    """A field's value, or its default when the request left it out (or gave null)."""
    return default if value is None or value is MISSING else value
