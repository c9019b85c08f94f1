"""Turn a candidate into a decision (buy / sell / hold) with a confidence.

Without a promoted model the `RuleScorer` decides, and every number it used is in
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

from coin_platform.events.schemas import Candidate, Decision
from coin_platform.settings import PlatformConfig

RULES_MODEL_VERSION = "rules-v1"


def _sign(value: float) -> float:
    return 0.0 if value == 0 else math.copysign(1.0, value)


def _present(features: Mapping[str, float | None], *names: str) -> bool:
    return all(features.get(n) is not None and math.isfinite(features[n]) for n in names)  # type: ignore[arg-type]


class RuleScorer:
    model_version = RULES_MODEL_VERSION

    def __init__(self, min_confidence: float, max_age: dt.timedelta) -> None:
        self.min_confidence = min_confidence
        self.max_age = max_age

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
        if age > self.max_age.total_seconds():
            action = "hold"
        elif candidate.signal.startswith("exit_"):
            action = candidate.side
        else:
            action = candidate.side if confidence >= self.min_confidence else "hold"
        inputs: dict[str, float | None] = {
            **{k: features.get(k) for k in ("ema_20", "ema_50", "macd_hist", "rsi_14")},
            **{f"evidence_{k}": v for k, v in terms.items()},
            "age_seconds": round(age, 3),
            "min_confidence": self.min_confidence,
        }
        return Decision(
            candidate_id=candidate.id,
            strategy=candidate.strategy,
            symbol=candidate.symbol,
            interval=candidate.interval,
            signal=candidate.signal,
            action=action,
            confidence=round(confidence, 6),
            model_version=self.model_version,
            price=candidate.price,
            candle_close_time=candidate.close_time,
            inputs=inputs,
            decided_at=now,
        )


def live_scorer(config: PlatformConfig) -> RuleScorer:
    """The scorer inference_job decides with, built from config.yaml: backtests of the decision path use it too."""
    return RuleScorer(
        min_confidence=config.inference.min_confidence,
        max_age=dt.timedelta(seconds=config.events.publish_max_age_seconds),
    )
