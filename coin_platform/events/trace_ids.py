"""The ids a log line about a candidate or a decision carries (coin_platform.ops.logs.log_event's fields),
so `coin trace` connects the candle, the candidate, the decision and its order (client order id = decision id)."""

from __future__ import annotations

from coin_platform.events.schemas import Candidate, Decision, decision_id


def candidate_ids(candidate: Candidate) -> dict[str, object]:
    """Its candle (symbol, interval, open time), itself, and the decision that will be made of it."""
    return {
        "symbol": candidate.symbol,
        "interval": candidate.interval,
        "open_time": candidate.open_time,
        "strategy": candidate.strategy,
        "signal": candidate.signal,
        "candidate_id": candidate.id,
        "decision_id": decision_id(candidate.id),
        "detected_at": candidate.detected_at,
    }


def decision_ids(decision: Decision) -> dict[str, object]:
    """Its candle's symbol and interval (the candidate's lines name its open time), its candidate, itself and its
    order, and the candle's close time."""
    return {
        "symbol": decision.symbol,
        "interval": decision.interval,
        "strategy": decision.strategy,
        "signal": decision.signal,
        "candidate_id": decision.candidate_id,
        "decision_id": decision.id,
        "client_order_id": decision.id,
        "action": decision.action,
        "candle_close_time": decision.candle_close_time,
    }
