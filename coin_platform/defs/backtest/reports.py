"""`backtest_report` (one partition per configured strategy), `backtest_job` that materializes it,
and `strategy_leaderboard` (every strategy × symbol with the configured defaults, ranked)."""

import datetime as dt

import dagster as dg
import polars as pl

from coin_platform.backtest.request import BACKTEST_JOB, REPORT_ASSET, resolve_request
from coin_platform.backtest.result import BacktestResult
from coin_platform.defs.backtest.inputs import BacktestRunConfig, backtest_inputs, user_errors
from coin_platform.defs.backtest.metadata import markdown_table, shown
from coin_platform.defs.resources import ObjectStoreResource
from coin_platform.settings import Settings
from coin_platform.storage.backtests import BacktestOutputs, write_backtest, write_backtest_progress
from coin_platform.strategies import build_strategy

# The metrics shown in the UI's table, in this order.
SHOWN_METRICS = (
    "total_return_pct",
    "cagr_pct",
    "sharpe",
    "sortino",
    "calmar",
    "max_drawdown_pct",
    "win_rate_pct",
    "profit_factor",
    "expectancy_pct",
    "exposure_pct",
    "trade_count",
)


def build_report_assets(
    settings: Settings, candle_assets: list[dg.AssetKey], funding_asset: dg.AssetKey
) -> tuple[dg.AssetsDefinition, dg.AssetsDefinition, dg.JobDefinition]:
    config = settings.config
    strategy_names = [s.name for s in config.strategies]
    by_name = {s.name: s for s in config.strategies}

    @dg.asset(
        name=REPORT_ASSET,
        group_name="backtest",
        partitions_def=dg.StaticPartitionsDefinition(strategy_names),
        # Every strategy's report reads whichever days and symbols its run config names.
        deps=[dg.AssetDep(key, partition_mapping=dg.AllPartitionMapping()) for key in (*candle_assets, funding_asset)],
        kinds={"polars", "numba", "html"},
        description=(
            "Backtest of one strategy (the partition) with the live strategy code: metrics, an HTML report with "
            "prices, trades, equity and drawdown, and PNGs, under backtests/{run_id}/ in the object store."
        ),
    )
    def backtest_report(
        context: dg.AssetExecutionContext, config: BacktestRunConfig, object_store: ObjectStoreResource
    ) -> dg.MaterializeResult:
        from coin_platform.backtest.report import render_report
        from coin_platform.backtest.runner import run_request

        name = context.partition_key
        store = object_store.get_store()
        run_id = context.run.run_id
        write_backtest_progress(store, run_id, 0.05, "loading candles")
        with user_errors():
            request = resolve_request(config.request(), name, settings.config, dt.datetime.now(dt.UTC).date())
            candles, funding = backtest_inputs(store, request, settings)
        write_backtest_progress(store, run_id, 0.3, "simulating")
        with user_errors():
            result = run_request(request, build_strategy(by_name[name]), candles, settings.config, funding=funding)
        write_backtest_progress(store, run_id, 0.7, "rendering the report")
        in_range = candles.filter(pl.col("open_time").is_between(request.range_start, request.range_end))
        title = f"{name} · {', '.join(request.symbols)} · {request.interval} · {request.start}..{request.end}"
        report = render_report(result, title=title, candles=in_range)
        summary = {
            "strategy": name,
            "metrics": result.metrics,
            "metrics_by_symbol": result.metrics_by_symbol.to_dicts(),
            "params": result.params,
            "funding_rows": 0 if funding is None else funding.height,
        }
        written = write_backtest(store, run_id, BacktestOutputs(report.html, summary, result.trades, report.pngs))
        write_backtest_progress(store, run_id, 1.0, "done")
        return dg.MaterializeResult(metadata=_report_metadata(result, report.pngs, written, funding))

    @dg.asset(
        name="strategy_leaderboard",
        group_name="backtest",
        deps=[*candle_assets, funding_asset],
        kinds={"polars", "numba"},
        description=(
            "Every configured strategy on every symbol, backtested over the same range with the same costs (the run "
            "config's, else config.yaml's backtest defaults), ranked by Sharpe (also return, drawdown, profit factor)."
        ),
    )
    def strategy_leaderboard(
        context: dg.AssetExecutionContext, config: BacktestRunConfig, object_store: ObjectStoreResource
    ) -> dg.MaterializeResult:
        from coin_platform.backtest.report import markdown_image, render_leaderboard
        from coin_platform.backtest.runner import run_request

        store = object_store.get_store()
        today = dt.datetime.now(dt.UTC).date()
        with user_errors():
            asked = config.request()
            common = resolve_request(asked, strategy_names[0], settings.config, today)
            candles, funding = backtest_inputs(store, common, settings)
        rows = []
        for name in strategy_names:
            with user_errors():
                request = resolve_request(asked, name, settings.config, today)
                result = run_request(request, build_strategy(by_name[name]), candles, settings.config, funding=funding)
            rows += [{"strategy": name, **row} for row in result.metrics_by_symbol.to_dicts()]
            context.log.info(f"{name}: {result.trades.height} trades, return {result.metrics['total_return_pct']}")
        board = pl.DataFrame(rows, infer_schema_length=None)
        # Sharpe needs two days of returns; a shorter range is ranked by its return.
        metric = "sharpe" if board["sharpe"].drop_nulls().len() else "total_return_pct"
        board = board.sort(metric, descending=True, nulls_last=True)
        return dg.MaterializeResult(
            metadata={
                "range": f"{common.start}..{common.end} ({common.interval})",
                "leaderboard": dg.MetadataValue.md(markdown_table(board, ("strategy", "symbol", *SHOWN_METRICS))),
                "ranked_by": metric,
                "chart": dg.MetadataValue.md(markdown_image(render_leaderboard(board, metric=metric), f"by {metric}")),
                "dagster/row_count": board.height,
            }
        )

    job = dg.define_asset_job(
        BACKTEST_JOB,
        selection=[backtest_report],
        description="Backtest one strategy (the partition) with the run config's parameters.",
    )
    return backtest_report, strategy_leaderboard, job


def _report_metadata(
    result: BacktestResult, pngs: dict[str, bytes], written: dict[str, str], funding: pl.DataFrame | None
) -> dict:
    from coin_platform.backtest.report import markdown_image

    metrics = result.metrics
    headline = {
        key: metrics[key] for key in ("total_return_pct", "sharpe", "max_drawdown_pct") if metrics[key] is not None
    }
    return {
        **headline,
        "trades": result.trades.height,
        "metrics": dg.MetadataValue.md(
            markdown_table(result.metrics_by_symbol, ("symbol", *SHOWN_METRICS))
            + "\n\n**All symbols:** "
            + ", ".join(f"{key} {shown(metrics.get(key))}" for key in SHOWN_METRICS)
        ),
        "equity": dg.MetadataValue.md(markdown_image(pngs["equity_drawdown"], "equity and drawdown")),
        "report": dg.MetadataValue.path(written["report.html"]),
        "trades_file": dg.MetadataValue.path(written["trades.parquet"]),
        "funding_rows": 0 if funding is None else funding.height,
    }
