"""`backtest_parity`: a backtest of the period the paper broker traded, compared order for order with
the trading store (coin_platform.backtest.parity). Its check fails on any difference, each listed
with its reason in the metadata."""

import datetime as dt
from collections.abc import Sequence

import dagster as dg
import polars as pl

from coin_platform.backtest.parity import backtest_live_period, compare_with_live
from coin_platform.core.intervals import interval_ms
from coin_platform.defs.backtest.candles import load_candles
from coin_platform.defs.resources import ObjectStoreResource, TradingDesk
from coin_platform.defs.trading.assets import ORDERS_ASSET
from coin_platform.features import LOOKBACK_CANDLES
from coin_platform.pipeline.features import lookback_start
from coin_platform.settings import Settings
from coin_platform.strategies import build_strategies

PARITY_CHECK = "orders_reproduced"
PARITY_EVERY_MINUTES = 15


def traded_intervals(settings: Settings) -> list[str]:
    """The configured intervals some enabled strategy evaluates: those the live path orders on."""
    strategies = build_strategies(settings.config.strategies)
    return [i for i in settings.config.intervals if any(not s.intervals or i in s.intervals for s in strategies)]


def build_parity_asset(settings: Settings, candle_assets: Sequence[dg.AssetKey]) -> dg.AssetsDefinition:
    config = settings.config
    strategies = build_strategies(config.strategies)
    intervals = traded_intervals(settings)

    @dg.asset(
        name="backtest_parity",
        group_name="backtest",
        deps=[ORDERS_ASSET, *candle_assets],
        kinds={"polars", "duckdb"},
        check_specs=[dg.AssetCheckSpec(PARITY_CHECK, asset="backtest_parity", blocking=False)],
        description=(
            "Backtests the period the paper broker traded with the live config and the live decision path, and "
            "compares order for order with the trading store: same symbol, side, candle and quantity, and the live "
            "fill inside the range of the candle it happened in."
        ),
    )
    def backtest_parity(
        context: dg.AssetExecutionContext,
        trading_store: dg.ResourceParam[TradingDesk],
        object_store: ObjectStoreResource,
    ) -> dg.MaterializeResult:
        store = trading_store.get_store()
        orders = store.orders().filter(pl.col("broker") == "paper")
        fills, rejections = store.fills(), store.rejections()
        if orders.is_empty():
            return _result(context, "no paper orders yet: nothing to compare", passed=True)
        first, last = orders["created_at"].min(), orders["created_at"].max()
        candles = {
            interval: load_candles(
                object_store.get_store(),
                config.all_symbols,  # orders of a symbol retired since
                interval,
                lookback_start(first.date(), interval, config.history_start, LOOKBACK_CANDLES),
                last + dt.timedelta(milliseconds=interval_ms(interval)),
            )
            for interval in intervals
        }
        finest = min(intervals, key=interval_ms)
        # Orders after the newest stored candle wait for their fill's candle: compared on a later run.
        end = min(last, candles[finest]["open_time"].max() + dt.timedelta(milliseconds=interval_ms(finest) - 1))
        run = backtest_live_period(candles, strategies, config, live_orders=orders, live_rejections=rejections)
        if run is None:
            return _result(context, "no paper order is a candidate of the configured strategies", passed=False)
        report = compare_with_live(
            run, orders, fills, rejections, slippage_rate=config.trading.slippage_rate, start=first, end=end
        )
        summary = (
            f"{report.matched} of {report.live_orders} live orders reproduced; "
            f"{report.differences.height} difference(s) over {first:%Y-%m-%d %H:%M}..{end:%Y-%m-%d %H:%M} UTC"
        )
        return _result(
            context,
            summary,
            passed=report.passed,
            metadata={
                "live_orders": report.live_orders,
                "backtest_orders": report.backtest_orders,
                "matched": report.matched,
                "period_start": first.isoformat(),
                "period_end": end.isoformat(),
                "differences": dg.MetadataValue.md(_markdown(report.differences)),
            },
        )

    return backtest_parity


def build_parity_schedule(asset: dg.AssetsDefinition) -> tuple[dg.JobDefinition, dg.ScheduleDefinition]:
    job = dg.define_asset_job("backtest_parity_job", selection=[asset], description="Backtest the traded period.")
    schedule = dg.ScheduleDefinition(
        name="backtest_parity_schedule",
        job=job,
        cron_schedule=f"*/{PARITY_EVERY_MINUTES} * * * *",
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Compares the paper orders with a backtest of their period every {PARITY_EVERY_MINUTES} minutes.",
    )
    return job, schedule


def _result(
    context: dg.AssetExecutionContext, summary: str, *, passed: bool, metadata: dict | None = None
) -> dg.MaterializeResult:
    context.log.info(summary)
    return dg.MaterializeResult(
        metadata={"summary": summary, **(metadata or {})},
        check_results=[
            dg.AssetCheckResult(
                check_name=PARITY_CHECK,
                passed=passed,
                severity=dg.AssetCheckSeverity.ERROR,
                description=summary,
            )
        ],
    )


def _markdown(differences: pl.DataFrame) -> str:
    if differences.is_empty():
        return "No differences."
    header = "| order | symbol | strategy | signal | kind | reason |\n|---|---|---|---|---|---|\n"
    rows = (
        f"| {d['client_order_id'][:12]} | {d['symbol']} | {d['strategy']} | {d['signal']} | {d['kind']} | "
        f"{d['reason'].replace('|', '/')} |"
        for d in differences.head(200).to_dicts()
    )
    more = f"\n\n… and {differences.height - 200} more" if differences.height > 200 else ""
    return header + "\n".join(rows) + more
