"""What every backtest asset of the domain starts from: its run config, its candles and funding rates, and
how a user's mistake in either fails the run."""

import contextlib
from collections.abc import Iterator

import dagster as dg
import polars as pl

from coin_platform.backtest.errors import BacktestInputError, NoCandlesInRange
from coin_platform.backtest.request import BacktestOverrides, ResolvedBacktest, parse_request
from coin_platform.defs.backtest.candles import load_candles
from coin_platform.loader import NoDataError
from coin_platform.settings import ConfigError, Settings
from coin_platform.storage.funding import read_funding
from coin_platform.storage.object_store import ObjectStore


class BacktestRunConfig(dg.Config):
    """A backtest's parameters; anything left out is config.yaml's `backtest:` default."""

    symbols: list[str] | None = None
    interval: str | None = None
    start: str | None = None  # YYYY-MM-DD, UTC
    end: str | None = None  # YYYY-MM-DD, inclusive
    initial_cash: float | None = None
    sizing: str | None = None  # equity_fraction or fixed_notional
    fraction: float | None = None
    stop_loss: float | None = None
    take_profit: float | None = None
    leverage: float | None = None
    funding: bool | None = None
    fee: float | None = None
    slippage: float | None = None
    decision_path: bool = False

    def request(self) -> BacktestOverrides:
        return parse_request(self.model_dump(exclude_none=True))


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """A bad request or a range without candles fails the run with the message that names it, no traceback."""
    try:
        yield
    except (ConfigError, NoDataError, NoCandlesInRange, BacktestInputError) as exc:
        raise dg.Failure(str(exc)) from None


def backtest_inputs(
    store: ObjectStore, request: ResolvedBacktest, settings: Settings
) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    """The request's candles (with the indicators' warm-up before the range) and, if it charges them, funding rates."""
    from coin_platform.backtest.runner import warmup_start  # in the run: the runner loads the engine's numba

    candles = load_candles(
        store,
        request.symbols,
        request.interval,
        warmup_start(request, settings.config.history_start),
        request.range_end,
    )
    funding = read_funding(store, request.symbols, request.range_start, request.range_end) if request.funding else None
    return candles, funding
