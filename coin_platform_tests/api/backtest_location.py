"""A test-only code location standing in for the real backtest job until it lands.

It has the real one's contract: a `backtest_job` materializing `backtest_report`, partitioned by
the configured strategy names, with the same run config fields; the run reads the candles it is
asked for, writes its progress while it works, then its report and summary through
storage/backtests.py, keyed by the run id. Its "metrics" are only candle counts and buy-and-hold
returns, enough to show that the request travelled through Dagster and back.
"""

import datetime as dt

import dagster as dg
import polars as pl

from coin_platform.settings import load_settings
from coin_platform.storage.backtests import BacktestOutputs, write_backtest, write_backtest_progress
from coin_platform.storage.layout import day_start
from coin_platform.storage.object_store import ObjectStore
from coin_platform.storage.ohlcv import read_candles

SETTINGS = load_settings()


class BacktestRunConfig(dg.Config):
    symbols: list[str] | None = None
    interval: str | None = None
    start: str | None = None
    end: str | None = None
    initial_cash: float | None = None
    sizing: str | None = None
    fraction: float | None = None
    stop_loss: float | None = None
    take_profit: float | None = None
    leverage: float | None = None
    funding: bool | None = None
    fee: float | None = None
    slippage: float | None = None
    decision_path: bool | None = None


def _window(config: BacktestRunConfig) -> tuple[dt.date, dt.date]:
    if config.start and config.end:
        return dt.date.fromisoformat(config.start), dt.date.fromisoformat(config.end)
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    return yesterday - dt.timedelta(days=SETTINGS.config.backtest.days - 1), yesterday


@dg.asset(
    name="backtest_report",
    partitions_def=dg.StaticPartitionsDefinition([strategy.name for strategy in SETTINGS.config.strategies]),
)
def backtest_report(context: dg.AssetExecutionContext, config: BacktestRunConfig) -> dg.MaterializeResult:
    store = ObjectStore.from_settings(SETTINGS)
    symbols = config.symbols or list(SETTINGS.config.symbols)
    interval = config.interval or SETTINGS.config.backtest.interval
    first, last = _window(config)
    write_backtest_progress(store, context.run_id, 0.0, "loading candles")
    by_symbol = []
    for symbol in symbols:
        candles = read_candles(store, symbol, interval, day_start(first), day_start(last + dt.timedelta(days=1)))
        if candles.is_empty():
            raise ValueError(f"no {interval} candles of {symbol} in {first}..{last}")
        by_symbol.append(
            {
                "symbol": symbol,
                "candles": candles.height,
                "buy_and_hold_return": candles["close"][-1] / candles["open"][0] - 1,
            }
        )
        write_backtest_progress(store, context.run_id, len(by_symbol) / len(symbols), f"read {symbol}")
    metrics = {
        "candles": sum(row["candles"] for row in by_symbol),
        "buy_and_hold_return": sum(row["buy_and_hold_return"] for row in by_symbol) / len(by_symbol),
    }
    params = {
        "strategy": context.partition_key,
        "interval": interval,
        "start": first,
        "end": last,
        **config.model_dump(exclude_none=True, exclude={"interval", "start", "end"}),
    }
    report = f"<html><body><h1>{context.partition_key}</h1><p>{metrics['candles']} candles</p></body></html>"
    written = write_backtest(
        store,
        context.run_id,
        BacktestOutputs(
            report_html=report,
            summary={"metrics": metrics, "metrics_by_symbol": by_symbol, "params": params},
            trades=pl.DataFrame(schema={"symbol": pl.String}),
        ),
    )
    return dg.MaterializeResult(metadata={"report": written["report.html"]})


backtest_job = dg.define_asset_job("backtest_job", selection=[backtest_report])
defs = dg.Definitions(assets=[backtest_report], jobs=[backtest_job])
