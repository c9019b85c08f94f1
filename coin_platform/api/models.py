"""What the API accepts and answers; the backtest request is narrowed to what config.yaml configures."""

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import MISSING, AfterValidator, BaseModel, ConfigDict, Field

from coin_platform.backtest.request import BacktestRequest, symbol_list
from coin_platform.client import TaskStatus
from coin_platform.settings import PlatformConfig

# A Dagster run id: a lower-case UUID (storage/layout.backtest_key accepts nothing wider).
TASK_ID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"


def _no_strategy_enabled(name: str) -> str:
    raise ValueError("no strategy is enabled in config.yaml (strategies[].enabled)")


def _defaults(config: PlatformConfig) -> dict[str, Any]:
    """What a backtest run takes for a field the request leaves out: config.yaml's `backtest:` section,
    the configured symbols, and the trading section's costs (backtest/request.py resolve_request)."""
    return {
        "symbols": list(config.symbols),
        "decision_path": False,
        "fee": config.trading.fee_rate,
        "slippage": config.trading.slippage_rate,
        **config.backtest.model_dump(exclude={"days"}),
    }


def backtest_request_model(config: PlatformConfig) -> type[BacktestRequest]:
    """The request body of POST /api/backtests/run-async: a BacktestRequest whose strategy is an enabled
    one, whose symbols and interval are configured ones; the schema shows each default."""
    enabled = tuple(strategy.name for strategy in config.strategies if strategy.enabled)
    strategy_name = Literal[enabled] if enabled else Annotated[str, AfterValidator(_no_strategy_enabled)]
    configured_symbol = Literal[config.all_symbols]  # retired symbols keep their history
    configured_interval = Literal[config.intervals]
    defaults = _defaults(config)

    def document_defaults(schema: dict[str, Any]) -> None:
        for name, value in defaults.items():
            schema["properties"][name]["default"] = value

    class BacktestRunRequest(BacktestRequest):
        __doc__ = BacktestRequest.__doc__
        model_config = ConfigDict(json_schema_extra=document_defaults)

        strategy: strategy_name = Field(description="an enabled strategy of config.yaml (GET /api/strategies)")
        symbols: symbol_list(configured_symbol) | MISSING = MISSING
        interval: configured_interval | MISSING = MISSING

    return BacktestRunRequest


class Problem(BaseModel):
    """An answer other than 2xx and 422: what went wrong, in one sentence."""

    detail: str


class TaskCreated(BaseModel):
    task_id: str = Field(description="the Dagster run id; poll GET /api/backtests/status/{task_id}")
    status: Literal["queued"]
    created_at: dt.datetime


class TaskState(BaseModel):
    task_id: str
    status: TaskStatus
    progress: float = Field(ge=0, le=1, description="0 while queued, 1 when completed")
    result: dict[str, Any] | None = Field(description="the metrics, once completed")
    error: str | None = Field(description="why the run failed")


class StrategyInfo(BaseModel):
    name: str
    kind: str
    params: dict[str, float | int | bool] = Field(description="every parameter: config.yaml's over the kind's defaults")
    intervals: list[str] = Field(description="the intervals it evaluates live")
    enabled: bool


class HealthCheck(BaseModel):
    component: str = Field(description="s3, kafka, clickhouse, trading_store, warehouse, candles, dagster_daemon, ...")
    name: str = Field(description="what of the component: a bucket, a symbol and interval, a sensor")
    status: Literal["ok", "busy", "fail"] = Field(description="busy: a store in use by another process")
    detail: str


class Health(BaseModel):
    """What `coin health --json` prints: 200 when every check is ok or busy, else 503."""

    status: Literal["ok", "fail"]
    checked_at: str
    seconds: float
    problems: list[str] = Field(description="the failed checks, each naming its component")
    checks: list[HealthCheck]
