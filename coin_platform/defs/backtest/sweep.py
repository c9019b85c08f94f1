"""`backtest_sweep`: a parameter grid of one strategy kind on one symbol, in one compiled pass, optionally
walk-forward (choose in-sample, report out-of-sample), with a heatmap of the metric over the grid."""

import dataclasses
import datetime as dt
from typing import TYPE_CHECKING

import dagster as dg

from coin_platform.backtest.request import parse_request, resolve_request
from coin_platform.core.intervals import interval_ms
from coin_platform.defs.backtest.inputs import BacktestRunConfig, backtest_inputs, user_errors
from coin_platform.defs.backtest.metadata import markdown_table
from coin_platform.defs.resources import ObjectStoreResource
from coin_platform.settings import ConfigError, Settings
from coin_platform.storage.backtests import SweepOutputs, write_backtest_progress, write_sweep

if TYPE_CHECKING:
    from coin_platform.backtest.sweep import WalkForward

HOUR_MS = 3_600_000
SWEEP_FIELDS = ("kind", "grid", "metric", "in_sample_hours", "out_of_sample_hours")


class SweepRunConfig(BacktestRunConfig):
    """A grid of one kind's parameters (e.g. {fast: [5, 10, 20], slow: [50, 100]}) on the first of `symbols`."""

    kind: str = "ema_crossover"
    grid: dict[str, list[float]] = {"fast": [5, 10, 20, 30], "slow": [50, 100, 200]}
    metric: str = "sharpe"
    # Both set: walk-forward windows of that many hours, each choosing in-sample and reporting out-of-sample.
    in_sample_hours: int | None = None
    out_of_sample_hours: int | None = None

    def request(self):
        return parse_request(self.model_dump(exclude_none=True, exclude=set(SWEEP_FIELDS)))

    def parameter_grid(self) -> dict[str, list[int | float]]:
        """The grid as the strategy takes it: whole numbers are periods (ints)."""
        if not self.grid:
            raise ConfigError("backtest.grid: give at least one parameter and its values")
        return {name: [int(v) if float(v).is_integer() else v for v in values] for name, values in self.grid.items()}


def build_sweep_asset(settings: Settings, candle_assets: list[dg.AssetKey]) -> dg.AssetsDefinition:
    @dg.asset(
        name="backtest_sweep",
        group_name="backtest",
        deps=candle_assets,
        kinds={"polars", "numba"},
        description=(
            "A parameter grid of one strategy kind on one symbol, evaluated in one compiled pass (indicators once "
            "per distinct period), ranked by the run config's metric; with in_sample_hours and out_of_sample_hours, "
            "walk-forward: each window's best in-sample set is reported on the hours after it."
        ),
    )
    def backtest_sweep(
        context: dg.AssetExecutionContext, config: SweepRunConfig, object_store: ObjectStoreResource
    ) -> dg.MaterializeResult:
        from coin_platform.backtest.engine import EquityFraction, FixedNotional
        from coin_platform.backtest.report import markdown_image, render_heatmap
        from coin_platform.backtest.sweep import run_sweep

        store = object_store.get_store()
        run_id = context.run.run_id
        write_backtest_progress(store, run_id, 0.05, "loading candles")
        with user_errors():
            request = resolve_request(config.request(), None, settings.config, dt.datetime.now(dt.UTC).date())
            grid = config.parameter_grid()
            symbol = request.symbols[0]
            candles, funding = backtest_inputs(store, dataclasses.replace(request, symbols=(symbol,)), settings)
            walk_forward = _walk_forward(config, request.interval)
            write_backtest_progress(store, run_id, 0.3, f"evaluating the grid of {config.kind}")
            sweep = run_sweep(
                candles,
                config.kind,
                grid,
                metric=config.metric,
                walk_forward=walk_forward,
                interval=request.interval,
                start=request.range_start,
                fee=request.fee,
                slippage=request.slippage,
                initial_cash=request.initial_cash,
                sizing=EquityFraction(request.fraction)
                if request.sizing == "equity_fraction"
                else FixedNotional(request.notional),
                stop_loss=request.stop_loss,
                take_profit=request.take_profit,
                leverage=request.leverage,
                funding=funding,
            )
        write_backtest_progress(store, run_id, 0.8, "drawing the heatmap")
        names = list(grid)
        ranked = sweep.results.sort(config.metric, descending=True, nulls_last=True)
        pictures = {}
        if len(names) >= 2 and walk_forward is None:
            pictures["heatmap"] = render_heatmap(ranked, names[0], names[1], config.metric)
        summary = {
            "kind": config.kind,
            "symbol": symbol,
            "metric": config.metric,
            "best": sweep.best,
            "skipped": sweep.skipped,
            "params": {**sweep.params, "interval": request.interval, "start": request.start, "end": request.end},
        }
        written = write_sweep(store, run_id, SweepOutputs(summary, sweep.results, sweep.walk_forward, pictures))
        write_backtest_progress(store, run_id, 1.0, "done")
        metadata = {
            "kind": config.kind,
            "symbol": symbol,
            "sets": sweep.params["sets"],
            "skipped": sweep.skipped,
            "best": dg.MetadataValue.json(sweep.best),
            "top": dg.MetadataValue.md(markdown_table(ranked.head(15), (*names, *_SHOWN))),
            "results": dg.MetadataValue.path(written["sweep.parquet"]),
        }
        if "heatmap" in pictures:
            metadata["heatmap"] = dg.MetadataValue.md(markdown_image(pictures["heatmap"], f"{config.metric} heatmap"))
        if sweep.walk_forward is not None:
            shown = (
                "window",
                "out_of_sample_start",
                "out_of_sample_end",
                *names,
                f"in_sample_{config.metric}",
                *_SHOWN,
            )
            metadata["walk_forward"] = dg.MetadataValue.md(markdown_table(sweep.walk_forward, shown))
        return dg.MaterializeResult(metadata=metadata)

    return backtest_sweep


_SHOWN = ("total_return_pct", "sharpe", "max_drawdown_pct", "profit_factor", "trade_count")


def _walk_forward(config: SweepRunConfig, interval: str) -> "WalkForward | None":
    from coin_platform.backtest.sweep import WalkForward

    hours = (config.in_sample_hours, config.out_of_sample_hours)
    if hours == (None, None):
        return None
    if None in hours or min(hours) < 1:  # type: ignore[type-var]
        raise ConfigError("backtest.in_sample_hours and backtest.out_of_sample_hours: give both, each at least 1")
    per_hour = HOUR_MS // interval_ms(interval)
    if per_hour < 1:
        raise ConfigError(f"backtest.in_sample_hours: {interval} candles are longer than an hour; use a finer interval")
    return WalkForward(
        in_sample_bars=config.in_sample_hours * per_hour, out_of_sample_bars=config.out_of_sample_hours * per_hour
    )
