"""The rule scorer: evidence from the candidate's side, confidence, and when it holds."""

import datetime as dt

import pytest

from coin_platform.events.schemas import Candidate
from coin_platform.ml.scorers import RULES_MODEL_VERSION, RuleScorer

OPEN = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
CLOSE = OPEN + dt.timedelta(seconds=59.999)
NOW = CLOSE + dt.timedelta(seconds=3)
BULLISH = {"ema_20": 101.0, "ema_50": 100.0, "macd_hist": 0.4, "rsi_14": 30.0}


def candidate(signal: str = "enter_long", features=None) -> Candidate:
    return Candidate(
        strategy="rsi_reversal", symbol="BTCUSDT", interval="1m", open_time=OPEN, close_time=CLOSE,
        signal=signal, price=84_000.0, features=features if features is not None else BULLISH, detected_at=NOW,
    )


def scorer(min_confidence: float = 0.55) -> RuleScorer:
    return RuleScorer(min_confidence=min_confidence, max_age=dt.timedelta(minutes=15))


def test_evidence_is_seen_from_the_candidates_side():
    assert scorer().evidence("buy", BULLISH) == {"trend": 1.0, "momentum": 1.0, "rsi_room": 1.0}
    assert scorer().evidence("sell", BULLISH) == {"trend": -1.0, "momentum": -1.0, "rsi_room": -1.0}
    # RSI room is clipped to [-1, 1]: 50 - 45 = 5 points of 20 -> 0.25
    assert scorer().evidence("buy", {"rsi_14": 45.0}) == {"rsi_room": 0.25}


def test_confidence_is_the_mean_evidence_mapped_to_0_1_and_every_input_is_recorded():
    decision = scorer().decide(candidate(features={**BULLISH, "macd_hist": -0.4}), BULLISH | {"macd_hist": -0.4}, NOW)
    # evidence 1, -1, 1 -> mean 1/3 -> 0.5 + 0.5 / 3
    assert decision.confidence == pytest.approx(0.5 + 0.5 / 3, abs=1e-6)
    assert decision.action == "buy" and decision.model_version == RULES_MODEL_VERSION
    assert decision.inputs["evidence_momentum"] == -1.0 and decision.inputs["age_seconds"] == 3.0
    assert decision.candidate_id == candidate().id and decision.price == 84_000.0


def test_an_entry_below_the_minimum_confidence_holds_but_an_exit_acts():
    against = {"ema_20": 99.0, "ema_50": 100.0, "macd_hist": -0.1}
    assert scorer().decide(candidate(), against, NOW).action == "hold"
    exit_decision = scorer().decide(candidate("exit_short"), against, NOW)
    assert exit_decision.action == "buy" and exit_decision.confidence == 0.0


def test_missing_or_non_finite_features_are_no_evidence():
    decision = scorer().decide(candidate(features={}), {"ema_20": float("nan"), "rsi_14": None}, NOW)
    assert decision.confidence == 0.5 and not [k for k in decision.inputs if k.startswith("evidence_")]


def test_a_late_candidate_is_held_whatever_its_evidence():
    late = NOW + dt.timedelta(minutes=15)
    assert scorer().decide(candidate(), BULLISH, late).action == "hold"
    assert scorer().decide(candidate("exit_long"), BULLISH, late).action == "hold"
