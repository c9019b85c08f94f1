"""The model side of the graph: training set -> signal_model -> model_evaluation (promotion, drift), and
the daily report. Each asset reads, calls the ml domain, writes to the object store and reports.

The warehouse comes in as the `warehouse` resource: anything with `get_warehouse(holder)` returning a
reader with `query(sql)` (the WAREHOUSE side's resource). The marts are dbt's assets, depended on by key.

Every run worker imports the code location, so training and evaluation (scikit-learn), the charts
(matplotlib, bokeh) and the gated backtests (numba) are imported inside the asset bodies that use them.
"""

import datetime as dt
import io
import math
from typing import TYPE_CHECKING, Any, Protocol

import dagster as dg
import polars as pl

from coin_platform.core.intervals import interval_ms
from coin_platform.defs.resources import ObjectStoreResource
from coin_platform.features import LOOKBACK_CANDLES
from coin_platform.ml.dataset import fingerprint, validate_training_frame, walk_forward_splits
from coin_platform.ml.marts import (
    DAILY_PERFORMANCE,
    DECISION_OUTCOMES,
    TRAINING_SET,
    MartReader,
    live_hit_rate,
    read_candles,
    read_daily_performance,
    read_training_set,
)
from coin_platform.ml.registry import DEFAULT_MODEL_NAME, ModelRegistry
from coin_platform.ml.scorers import live_scorer
from coin_platform.settings import Settings
from coin_platform.strategies import build_strategy

if TYPE_CHECKING:
    from coin_platform.ml.training import TrainedModel

GROUP = "models"
TRAINING_SET_KEY = f"models/{DEFAULT_MODEL_NAME}/training_set.parquet"
# Below this many acted live decisions the drift check does not judge (too few to compare).
DRIFT_MIN_DECISIONS = 30
DRIFT_TOLERANCE = 0.10


class WarehouseSource(Protocol):
    def get_warehouse(self, holder: str = "") -> MartReader: ...


class SignalModelConfig(dg.Config):
    threshold: float = 0.35  # entries act when P(clears fees) reaches it
    folds: int = 3
    test_fraction: float = 0.25


def _splits(frame: pl.DataFrame, folds: int, test_fraction: float):
    return walk_forward_splits(frame, folds=folds, test_fraction=test_fraction)


def _scorers_table(evaluation: dict[str, Any]) -> str:
    lines = ["| scorer | says yes | acted | precision | hit rate | AUC | Brier |", "|---|---|---|---|---|---|---|"]
    for name, m in evaluation["scorers"].items():
        cells = [_fmt(m[k]) for k in ("precision", "hit_rate", "auc", "brier")]
        lines.append(f"| {name} | {m['says_yes']} | {m['acted']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def build_defs(settings: Settings) -> dg.Definitions:
    """The ml assets and checks."""
    config = settings.config
    fee = config.trading.fee_rate

    @dg.asset(
        name="training_dataset",
        group_name=GROUP,
        deps=[dg.AssetKey([TRAINING_SET])],
        kinds={"polars", "s3"},
        description="dbt's mart_training_set, checked against the training frame contract, in the object store.",
    )
    def training_dataset(
        context: dg.AssetExecutionContext,
        warehouse: dg.ResourceParam[WarehouseSource],
        object_store: ObjectStoreResource,
    ) -> dg.MaterializeResult:
        frame = validate_training_frame(read_training_set(warehouse.get_warehouse(context.run.run_id)))
        object_store.get_store().write_parquet(TRAINING_SET_KEY, frame)
        counts = frame.group_by("strategy", "signal").len().sort("strategy", "signal")
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": frame.height,
                "window": f"{frame['close_time'].min()} .. {frame['close_time'].max()}",
                "positive_rate": float(frame["label"].mean()),  # type: ignore[arg-type]
                "data_fingerprint": fingerprint(frame),
                "candidates": dg.MetadataValue.md(_markdown(counts)),
            }
        )

    @dg.asset(
        name="signal_model",
        group_name=GROUP,
        deps=[training_dataset],
        kinds={"scikitlearn", "s3"},
        description="HistGradientBoosting on the training set's older rows (purged walk-forward), stored versioned.",
    )
    def signal_model(
        context: dg.AssetExecutionContext, config: SignalModelConfig, object_store: ObjectStoreResource
    ) -> dg.MaterializeResult:
        from coin_platform.backtest.report import markdown_image
        from coin_platform.ml.evaluation import evaluate, reliability_png
        from coin_platform.ml.training import train_model

        store = object_store.get_store()
        frame = validate_training_frame(store.read_parquet(TRAINING_SET_KEY))
        splits = _splits(frame, config.folds, config.test_fraction)
        folds = []
        for split in splits[:-1]:
            fold = evaluate(
                train_model(split.train), split.test, live_scorer(settings.config), threshold=config.threshold
            )
            folds.append(fold["scorers"]["model"]["auc"])
        held_out = splits[-1]
        model = train_model(held_out.train)
        evaluation = evaluate(model, held_out.test, live_scorer(settings.config), threshold=config.threshold)
        metrics = {
            "held_out": evaluation["scorers"]["model"],
            "held_out_window": evaluation["window"],
            "walk_forward_auc": folds,
            "training_config": config.model_dump(),
        }
        record = ModelRegistry(store).save(model, metrics=metrics, threshold=config.threshold)
        context.log.info(f"stored {record.label}")
        return dg.MaterializeResult(
            metadata={
                "version": record.version,
                "train_window": f"{record.train_start} .. {record.train_end}",
                "held_out_window": f"{evaluation['window']['start']} .. {evaluation['window']['end']}",
                "rows": record.rows,
                "held_out_auc": _fmt(evaluation["scorers"]["model"]["auc"]),
                "walk_forward_auc": ", ".join(_fmt(a) for a in folds),
                "data_fingerprint": record.data_fingerprint,
                "model_sha256": record.model_sha256,
                "reliability": dg.MetadataValue.md(
                    markdown_image(reliability_png(model, held_out.test), "reliability")
                ),
            }
        )

    @dg.asset(
        name="model_evaluation",
        group_name=GROUP,
        deps=[signal_model],
        kinds={"scikitlearn", "s3"},
        description="The newest model, loaded back from its file, against always-act and the rule scorer on the "
        "held-out window; the strategies' backtests gated by it vs ungated, after fees.",
    )
    def model_evaluation(
        context: dg.AssetExecutionContext,
        warehouse: dg.ResourceParam[WarehouseSource],
        object_store: ObjectStoreResource,
    ) -> dg.MaterializeResult:
        from coin_platform.backtest.report import markdown_image
        from coin_platform.ml.evaluation import beats_baselines, evaluate, reliability_png
        from coin_platform.ml.training import TrainedModel

        store = object_store.get_store()
        registry = ModelRegistry(store)
        version = registry.versions()[-1]
        loaded = registry.load(version)  # the stored file itself: what would trade is what is judged
        record = loaded.record
        frame = validate_training_frame(store.read_parquet(TRAINING_SET_KEY))
        settings_of_training = record.metrics["training_config"]
        held_out = _splits(frame, settings_of_training["folds"], settings_of_training["test_fraction"])[-1]
        if fingerprint(held_out.train) != record.data_fingerprint:
            raise dg.Failure(f"the stored training set no longer holds the rows {record.label} was trained on")
        model = TrainedModel(
            loaded.pipeline,
            record.inputs,
            held_out.train["close_time"].min(),
            held_out.train["close_time"].max(),
            held_out.purge,
            record.rows,
            record.positive_rate,
            record.data_fingerprint,
        )
        evaluation = evaluate(model, held_out.test, live_scorer(settings.config), threshold=record.threshold)
        backtest = _gated_backtests(warehouse.get_warehouse(context.run.run_id), model, held_out.test, record.threshold)
        passed, reasons = beats_baselines(evaluation, backtest)
        evaluation |= {"version": version, "backtest": backtest, "beats_baselines": passed, "reasons": reasons}
        png = reliability_png(model, held_out.test)
        registry.write_evaluation(version, evaluation, png)
        return dg.MaterializeResult(
            metadata={
                "version": version,
                "beats_baselines": passed,
                "why": "; ".join(reasons),
                "scorers": dg.MetadataValue.md(_scorers_table(evaluation)),
                "backtest": dg.MetadataValue.md(_backtest_table(backtest)),
                "reliability": dg.MetadataValue.md(markdown_image(png, "reliability")),
            }
        )

    def _gated_backtests(
        reader: MartReader, model: "TrainedModel", held_out: pl.DataFrame, threshold: float
    ) -> dict[str, Any]:
        """Every (strategy, interval) of the held-out window, gated vs ungated; returns averaged over them."""
        from coin_platform.backtest.gating import gated_backtest
        from coin_platform.ml.evaluation import accepted_entries

        strategies = {s.name: build_strategy(s) for s in config.strategies}
        groups = []
        for (name, interval), rows in held_out.group_by("strategy", "interval", maintain_order=True):
            if name not in strategies:
                continue
            start, end = rows["open_time"].min(), rows["horizon_close_time"].max()
            symbols = sorted(rows["symbol"].unique())
            first = start - dt.timedelta(milliseconds=LOOKBACK_CANDLES * interval_ms(interval))
            candles = read_candles(reader, interval, symbols, first, end)
            accepted = accepted_entries(model, rows, threshold=threshold)
            comparison = gated_backtest(
                candles,
                strategies[name],
                accepted,
                start=start,
                end=end,
                interval=interval,
                fee=fee,
                slippage=config.trading.slippage_rate,
            )
            groups.append({"strategy": name, "interval": interval, **comparison.summary()})
        if not groups:
            raise dg.Failure("no held-out candidate belongs to a configured strategy: nothing to backtest")
        return {
            "groups": groups,
            "gated_return_pct": sum(g["gated_return_pct"] for g in groups) / len(groups),
            "ungated_return_pct": sum(g["ungated_return_pct"] for g in groups) / len(groups),
        }

    @dg.asset_check(
        asset=model_evaluation,
        name="promotion",
        blocking=True,
        description="Promotes the evaluated model only when it beats both baselines on the held-out "
        "window (precision above always-act's, gated backtest return above ungated, after fees).",
    )
    def promotion(object_store: ObjectStoreResource) -> dg.AssetCheckResult:
        registry = ModelRegistry(object_store.get_store())
        version = registry.versions()[-1]
        evaluation = registry.evaluation(version)
        if evaluation is None:
            return dg.AssetCheckResult(passed=False, description=f"{version} has no evaluation")
        metadata = {"version": version, "why": "; ".join(evaluation["reasons"])}
        if not evaluation["beats_baselines"]:
            return dg.AssetCheckResult(passed=False, metadata={**metadata, "promoted": registry.promoted_version()})
        registry.promote(version, reason="; ".join(evaluation["reasons"]))
        return dg.AssetCheckResult(passed=True, metadata={**metadata, "promoted": version})

    @dg.asset_check(
        asset=model_evaluation,
        name="live_hit_rate_drift",
        additional_deps=[dg.AssetKey([DECISION_OUTCOMES])],
        description=f"Warns when the promoted model's live hit rate (mart_decision_outcomes) is more than "
        f"{DRIFT_TOLERANCE:.0%} away from its evaluated one.",
    )
    def live_hit_rate_drift(
        context: dg.AssetCheckExecutionContext,
        warehouse: dg.ResourceParam[WarehouseSource],
        object_store: ObjectStoreResource,
    ) -> dg.AssetCheckResult:
        registry = ModelRegistry(object_store.get_store())
        version = registry.promoted_version()
        if version is None:
            return dg.AssetCheckResult(
                passed=True, severity=dg.AssetCheckSeverity.WARN, description="no model is promoted: nothing to compare"
            )
        evaluated = (registry.evaluation(version) or {}).get("scorers", {}).get("model", {}).get("hit_rate")
        acted, live = live_hit_rate(warehouse.get_warehouse(context.run.run_id), registry.record(version).label)
        metadata = {
            "version": version,
            "live_decisions": acted,
            "live_hit_rate": _fmt(live),
            "evaluated_hit_rate": _fmt(evaluated),
        }
        if acted < DRIFT_MIN_DECISIONS or evaluated is None or live is None:
            return dg.AssetCheckResult(
                passed=True,
                severity=dg.AssetCheckSeverity.WARN,
                metadata=metadata,
                description=f"{acted} live decisions: too few to judge",
            )
        return dg.AssetCheckResult(
            passed=abs(live - evaluated) <= DRIFT_TOLERANCE, severity=dg.AssetCheckSeverity.WARN, metadata=metadata
        )

    @dg.asset(
        name="daily_report",
        group_name=GROUP,
        deps=[dg.AssetKey([DAILY_PERFORMANCE])],
        kinds={"matplotlib"},
        description="Candidates, decisions, paper PnL and hit rate per day and strategy (mart_daily_performance).",
    )
    def daily_report(
        context: dg.AssetExecutionContext, warehouse: dg.ResourceParam[WarehouseSource]
    ) -> dg.MaterializeResult:
        from coin_platform.backtest.report import markdown_image

        frame = read_daily_performance(warehouse.get_warehouse(context.run.run_id))
        if frame.is_empty():
            return dg.MaterializeResult(metadata={"days": 0, "report": dg.MetadataValue.md("No days yet.")})
        daily = (
            frame.group_by("day")
            .agg(
                pl.col("candidates", "decisions", "acted", "fills", "paper_pnl").sum(),
                pl.col("hit_rate").mean(),
            )
            .sort("day")
        )
        return dg.MaterializeResult(
            metadata={
                "days": daily.height,
                "report": dg.MetadataValue.md(_markdown(frame)),
                "charts": dg.MetadataValue.md(markdown_image(_daily_png(daily), "daily performance")),
            }
        )

    return dg.Definitions(
        assets=[training_dataset, signal_model, model_evaluation, daily_report],
        asset_checks=[promotion, live_hit_rate_drift],
    )


def _markdown(frame: pl.DataFrame) -> str:
    with pl.Config(
        tbl_formatting="MARKDOWN",
        tbl_hide_dataframe_shape=True,
        tbl_hide_column_data_types=True,
        tbl_rows=-1,
        tbl_cols=-1,
    ):
        return str(frame)


def _backtest_table(backtest: dict[str, Any]) -> str:
    lines = [
        "| strategy | interval | gated return % | ungated return % | gated trades | ungated trades |",
        "|---|---|---|---|---|---|",
    ]
    for g in backtest["groups"]:
        lines.append(
            f"| {g['strategy']} | {g['interval']} | {g['gated_return_pct']:.3f} | "
            f"{g['ungated_return_pct']:.3f} | {g['gated_trades']} | {g['ungated_trades']} |"
        )
    return "\n".join(lines)


def _daily_png(daily: pl.DataFrame) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 7), dpi=100)
    FigureCanvasAgg(figure)
    days = daily["day"].to_list()
    for index, (column, title) in enumerate(
        [
            ("candidates", "candidates"),
            ("decisions", "decisions"),
            ("paper_pnl", "paper PnL (USDT)"),
            ("hit_rate", "hit rate"),
        ],
        start=1,
    ):
        axes = figure.add_subplot(2, 2, index)
        values = daily[column].to_list()
        if column == "hit_rate":
            axes.plot(days, values, marker="o")
            axes.set_ylim(0, 1)
        else:
            axes.bar(days, values)
        axes.set_title(title)
        axes.tick_params(axis="x", labelrotation=45, labelsize=7)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
