"""A model judged on its held-out window against the naive baselines: always act, and the rule scorer.

Each scorer gives every held-out candidate a score and a yes/no:

* precision: of the candidates it says yes to, the share whose label is true (the forward return
  cleared the round-trip fee);
* hit_rate: of the candidates it would act on as inference does (exits always act, entries when it
  says yes), the share whose label is true: what `mart_decision_outcomes.hit` measures live;
* auc and brier of its score against the label (always-act scores 1 everywhere: auc 0.5);
* acted and mean_forward_return of what it would act on.

The model says yes when P(label) ≥ its threshold; the rule scorer when its confidence ≥
`min_confidence`, as `RuleScorer.decide` does. The reliability plot bins the model's probabilities
(sklearn's calibration_curve) against the observed label rate.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import polars as pl
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss, roc_auc_score

from coin_platform.ml.dataset import FEATURE_NAMES
from coin_platform.ml.scorers import RuleScorer
from coin_platform.ml.training import TrainedModel

SCORERS = ("model", "always_act", "rule")
_ORDER_SIDE = {"long": "buy", "short": "sell"}


def rule_confidence(scorer: RuleScorer, frame: pl.DataFrame) -> np.ndarray:
    """The rule scorer's confidence for each row of a training frame."""
    confidence = []
    for row in frame.select("side", *FEATURE_NAMES).iter_rows(named=True):
        terms = scorer.evidence(_ORDER_SIDE[row["side"]], row)
        confidence.append(0.5 + 0.5 * sum(terms.values()) / len(terms) if terms else 0.5)
    return np.asarray(confidence, dtype=float)


def scorer_metrics(frame: pl.DataFrame, score: np.ndarray, says_yes: np.ndarray) -> dict[str, Any]:
    """The metrics of one scorer's scores and yes/no on the held-out rows of `frame`."""
    label = frame["label"].to_numpy().astype(bool)
    forward = frame["forward_return"].to_numpy()
    exits = frame["signal"].str.starts_with("exit_").to_numpy()
    acts = says_yes | exits
    both_outcomes = label.any() and not label.all()
    return {
        "rows": int(frame.height),
        "says_yes": int(says_yes.sum()),
        "acted": int(acts.sum()),
        "precision": float(label[says_yes].mean()) if says_yes.any() else None,
        "hit_rate": float(label[acts].mean()) if acts.any() else None,
        "mean_forward_return": float(forward[acts].mean()) if acts.any() else None,
        "auc": float(roc_auc_score(label, score)) if both_outcomes else None,
        "brier": float(brier_score_loss(label, np.clip(score, 0.0, 1.0))),
    }


def evaluate(model: TrainedModel, held_out: pl.DataFrame, rule: RuleScorer, *, threshold: float) -> dict[str, Any]:
    """The model and both baselines on the held-out rows (a validated training frame)."""
    probability = model.probability(held_out)
    confidence = rule_confidence(rule, held_out)
    everything = np.ones(held_out.height, dtype=bool)
    return {
        "window": {
            "start": held_out["close_time"].min().isoformat(),  # type: ignore[union-attr]
            "end": held_out["close_time"].max().isoformat(),  # type: ignore[union-attr]
            "rows": held_out.height,
            "positive_rate": float(held_out["label"].mean()),  # type: ignore[arg-type]
        },
        "threshold": threshold,
        "rule_min_confidence": rule.min_confidence,
        "scorers": {
            "model": scorer_metrics(held_out, probability, probability >= threshold),
            "always_act": scorer_metrics(held_out, everything.astype(float), everything),
            "rule": scorer_metrics(held_out, confidence, confidence >= rule.min_confidence),
        },
    }


def accepted_entries(model: TrainedModel, held_out: pl.DataFrame, *, threshold: float) -> pl.DataFrame:
    """symbol, open_time, signal of the held-out entry candidates the model says yes to (the gate)."""
    probability = model.probability(held_out)
    return (
        held_out.with_columns(probability=pl.Series(probability))
        .filter(pl.col("signal").str.starts_with("enter_") & (pl.col("probability") >= threshold))
        .select("strategy", "symbol", "interval", "open_time", "signal")
    )


def reliability_png(model: TrainedModel, held_out: pl.DataFrame, *, bins: int = 10) -> bytes:
    """The reliability plot of the model's probabilities on the held-out rows, as PNG bytes."""
    label = held_out["label"].to_numpy().astype(bool)
    probability = model.probability(held_out)
    observed, predicted = calibration_curve(label, probability, n_bins=bins, strategy="quantile")
    figure = Figure(figsize=(5, 5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    axes.plot(predicted, observed, marker="o", label="model")
    axes.axhline(label.mean(), color="tab:orange", linewidth=1, label="always act (base rate)")
    axes.set(
        xlabel="predicted P(clears fees)",
        ylabel="observed share that cleared fees",
        xlim=(0, 1),
        ylim=(0, 1),
        title="Reliability on the held-out window",
    )
    axes.legend(loc="upper left")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def beats_baselines(evaluation: dict[str, Any], backtest: dict[str, Any]) -> tuple[bool, list[str]]:
    """Whether the model beats both baselines on the held-out window, and why (or why not).

    Precision above always-act's (the base rate), and the gated backtest's return after fees above
    the ungated one's."""
    scorers = evaluation["scorers"]
    reasons = []
    model_precision, base_precision = scorers["model"]["precision"], scorers["always_act"]["precision"]
    precision_ok = model_precision is not None and model_precision > base_precision
    reasons.append(f"precision {_pct(model_precision)} vs always-act {_pct(base_precision)}")
    gated, ungated = backtest["gated_return_pct"], backtest["ungated_return_pct"]
    backtest_ok = gated > ungated
    reasons.append(f"gated backtest return {gated:.3f}% vs ungated {ungated:.3f}% after fees")
    return precision_ok and backtest_ok, reasons


def _pct(value: float | None) -> str:
    return "n/a (says yes to nothing)" if value is None else f"{100 * value:.1f}%"
