"""Turn a candidate into a decision (buy / sell / hold) with a confidence.

With a promoted model the `ModelScorer` decides (`inference_scorer` picks it: see the class). Without
one, or when its file is refused, the `RuleScorer` decides, and every number it used is in
the decision's `inputs`, so a decision can be checked by hand:

* each piece of evidence is a number in [-1, 1] from the point of view of the
  candidate's side (+1 supports it): trend `sign(ema_20 - ema_50)`, momentum
  `sign(macd_hist)`, and RSI room `clip((50 - rsi_14) / 20, -1, 1)` (negated for
  a sell);
* confidence = 0.5 + 0.5 × the mean of the evidence present (0.5 when none is);
* entries act when confidence ≥ `min_confidence`, else hold; exits always act,
  because closing a position needs no conviction (the confidence is still reported);
* a candidate whose candle closed longer ago than `max_age` is held: a late
  message must not trade on an old price.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass

from threadpoolctl import ThreadpoolController

from coin_platform.events.schemas import Candidate, Decision
from coin_platform.ml.dataset import CATEGORICAL_INPUTS, candidate_frame, model_inputs
from coin_platform.ml.registry import DEFAULT_MODEL_NAME, LoadedModel, ModelFileError, ModelRegistry
from coin_platform.settings import PlatformConfig
from coin_platform.storage.object_store import ObjectStore

RULES_MODEL_VERSION = "rules-v1"
_THREADS = ThreadpoolController()


def _sign(value: float) -> float:
    return 0.0 if value == 0 else math.copysign(1.0, value)


def _present(features: Mapping[str, float | None], *names: str) -> bool:
    return all(features.get(n) is not None and math.isfinite(features[n]) for n in names)  # type: ignore[arg-type]


class RuleScorer:
    def __init__(
        self, min_confidence: float, max_age: dt.timedelta, *, model_version: str = RULES_MODEL_VERSION
    ) -> None:
        self.min_confidence = min_confidence
        self.max_age = max_age
        self.model_version = model_version

    def evidence(self, side: str, features: Mapping[str, float | None]) -> dict[str, float]:
        direction = 1.0 if side == "buy" else -1.0
        terms: dict[str, float] = {}
        if _present(features, "ema_20", "ema_50"):
            terms["trend"] = direction * _sign(features["ema_20"] - features["ema_50"])  # type: ignore[operator]
        if _present(features, "macd_hist"):
            terms["momentum"] = direction * _sign(features["macd_hist"])  # type: ignore[arg-type]
        if _present(features, "rsi_14"):
            room = (50.0 - features["rsi_14"]) / 20.0  # type: ignore[operator]
            terms["rsi_room"] = direction * max(-1.0, min(1.0, room))
        return terms

    def decide(self, candidate: Candidate, features: Mapping[str, float | None], now: dt.datetime) -> Decision:
        terms = self.evidence(candidate.side, features)
        confidence = 0.5 + 0.5 * (sum(terms.values()) / len(terms)) if terms else 0.5
        age = (now - candidate.close_time).total_seconds()
        action = _action(candidate, confidence >= self.min_confidence, age, self.max_age)
        inputs: dict[str, float | None] = {
            **{k: features.get(k) for k in ("ema_20", "ema_50", "macd_hist", "rsi_14")},
            **{f"evidence_{k}": v for k, v in terms.items()},
            "age_seconds": round(age, 3),
            "min_confidence": self.min_confidence,
        }
        return _decision(candidate, action, confidence, self.model_version, inputs, now)


def _decision(
    candidate: Candidate,
    action: str,
    confidence: float,
    model_version: str,
    inputs: dict[str, float | None],
    now: dt.datetime,
) -> Decision:
    """A scorer's decision on `candidate`, with what it was given."""
    return Decision(
        candidate_id=candidate.id,
        strategy=candidate.strategy,
        symbol=candidate.symbol,
        interval=candidate.interval,
        signal=candidate.signal,
        action=action,
        confidence=round(confidence, 6),
        model_version=model_version,
        price=candidate.price,
        candle_close_time=candidate.close_time,
        inputs=inputs,
        decided_at=now,
    )


def _action(candidate: Candidate, says_yes: bool, age_seconds: float, max_age: dt.timedelta) -> str:
    """Late candidates hold; exits always act; entries act when the scorer says yes."""
    if age_seconds > max_age.total_seconds():
        return "hold"
    if candidate.signal.startswith("exit_") or says_yes:
        return candidate.side
    return "hold"


def live_scorer(config: PlatformConfig, *, model_version: str = RULES_MODEL_VERSION) -> RuleScorer:
    """The rule scorer built from config.yaml: backtests of the decision path use it, and inference does
    whenever no model is promoted (then `model_version` says why, as `rule:<reason>`)."""
    return RuleScorer(
        min_confidence=config.inference.min_confidence,
        max_age=dt.timedelta(seconds=config.events.publish_max_age_seconds),
        model_version=model_version,
    )


class ModelScorer:
    """Decides with a promoted model: confidence = P(the forward return clears the round-trip fee).

    The candidate's features go through `dataset.model_inputs`, the code that made the training inputs;
    entries act when the probability reaches the model's threshold (stored in its record), and the
    age and exit rules are the rule scorer's."""

    def __init__(self, model: LoadedModel, max_age: dt.timedelta) -> None:
        self.model = model
        self.max_age = max_age
        self.model_version = model.record.label
        self.threshold = model.record.threshold

    def decide(self, candidate: Candidate, features: Mapping[str, float | None], now: dt.datetime) -> Decision:
        # Imported when a model scores: training imports scikit-learn, which the rule scorer's runs never need.
        from coin_platform.ml.training import predict_probability

        vector = model_inputs(candidate_frame(candidate, dict(features)))
        # One row: OpenMP's thread team costs more than it saves, and far more on a busy machine.
        with _THREADS.limit(limits=1, user_api="openmp"):
            probability = float(predict_probability(self.model.pipeline, vector)[0])
        age = (now - candidate.close_time).total_seconds()
        action = _action(candidate, probability >= self.threshold, age, self.max_age)
        numeric = vector.drop(*CATEGORICAL_INPUTS).row(0, named=True)
        inputs: dict[str, float | None] = {
            **{k: (None if v is None or not math.isfinite(v) else v) for k, v in numeric.items()},
            "probability": round(probability, 6),
            "threshold": self.threshold,
            "age_seconds": round(age, 3),
        }
        return _decision(candidate, action, probability, self.model_version, inputs, now)


Scorer = RuleScorer | ModelScorer


@dataclass(frozen=True)
class ScorerChoice:
    """The scorer inference uses now, and why the rule scorer was chosen when it was."""

    scorer: Scorer
    fallback_reason: str | None = None


NO_PROMOTED_MODEL = "rule:no-promoted-model"
MODEL_REFUSED = "rule:model-refused"
# Loaded models of this process, by (store, model name, version): a version's file never changes.
_LOADED: dict[tuple[str, str, str], ModelScorer] = {}


def inference_scorer(store: ObjectStore, config: PlatformConfig, name: str = DEFAULT_MODEL_NAME) -> ScorerChoice:
    """The newest promoted model of `name` as a ModelScorer (loaded once per process and version), or the
    rule scorer with the reason when none is promoted or its file is refused."""
    max_age = dt.timedelta(seconds=config.events.publish_max_age_seconds)
    registry = ModelRegistry(store, name)
    try:
        version = registry.promoted_version()
    except (OSError, ValueError, KeyError) as exc:
        return ScorerChoice(live_scorer(config, model_version=MODEL_REFUSED), f"promoted pointer unreadable: {exc}")
    if version is None:
        return ScorerChoice(
            live_scorer(config, model_version=NO_PROMOTED_MODEL), f"no {name} model is promoted in {store.uri}"
        )
    cache_key = (store.uri, name, version)
    if cache_key not in _LOADED:
        try:
            _LOADED[cache_key] = ModelScorer(registry.load(version), max_age)
        except ModelFileError as exc:
            return ScorerChoice(live_scorer(config, model_version=MODEL_REFUSED), str(exc))
    return ScorerChoice(_LOADED[cache_key])
