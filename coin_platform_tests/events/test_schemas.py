"""Candidate and decision messages: round trips, deterministic ids, and errors that name the field."""

import datetime as dt
import json

import pytest

from coin_platform.events.schemas import Candidate, Decision, MessageError, candidate_id
from coin_platform_tests.trading.support import make_decision

OPEN = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def make_candidate(**overrides) -> Candidate:
    fields = dict(
        strategy="rsi_reversal",
        symbol="BTCUSDT",
        interval="1m",
        open_time=OPEN,
        close_time=OPEN + dt.timedelta(seconds=59.999),
        signal="enter_long",
        price=84_000.5,
        features={"rsi_14": 28.5, "ema_20": None},
        detected_at=OPEN + dt.timedelta(minutes=1, seconds=2),
    )
    return Candidate(**{**fields, **overrides})


def test_a_candidate_round_trips_and_its_id_depends_only_on_what_identifies_it():
    candidate = make_candidate()
    assert Candidate.from_json(candidate.to_json()) == candidate
    body = json.loads(candidate.to_json())
    assert body["schema_version"] == 1 and body["type"] == "candidate" and body["side"] == "buy"
    later = make_candidate(detected_at=OPEN + dt.timedelta(hours=1), price=1.0, features={})
    assert later.id == candidate.id == candidate_id("rsi_reversal", "BTCUSDT", "1m", OPEN, "enter_long")
    assert make_candidate(signal="exit_long").id != candidate.id
    assert make_candidate(open_time=OPEN + dt.timedelta(minutes=1)).id != candidate.id


def test_a_decision_round_trips_with_an_id_derived_from_its_candidate():
    candidate = make_candidate()
    decision = Decision(
        candidate_id=candidate.id,
        strategy=candidate.strategy,
        symbol=candidate.symbol,
        interval=candidate.interval,
        signal=candidate.signal,
        action="buy",
        confidence=0.75,
        model_version="rules-v1",
        price=candidate.price,
        candle_close_time=candidate.close_time,
        inputs={"rsi_14": 28.5},
        decided_at=OPEN + dt.timedelta(minutes=1, seconds=3),
    )
    assert Decision.from_json(decision.to_json()) == decision
    assert decision.id != candidate.id and len(decision.id) == 32


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda b: b.pop("symbol"), "missing field 'symbol'"),
        (lambda b: b.update(schema_version=2), "schema_version 2 is not 1"),
        (lambda b: b.update(type="decision"), "type 'decision' is not 'candidate'"),
        (lambda b: b.update(open_time="2026-03-01T12:00:00"), "open_time has no UTC offset"),
        (lambda b: b.update(price="84000"), "price must be"),
        (lambda b: b.update(signal="buy_now"), "signal 'buy_now' is not one of"),
        (lambda b: b.update(features={"rsi_14": "high"}), "features.rsi_14 must be a finite number"),
        (lambda b: b.update(id="0" * 32), "does not match its fields"),
    ],
)
def test_a_malformed_candidate_names_what_is_wrong(mutate, expected):
    body = json.loads(make_candidate().to_json())
    mutate(body)
    with pytest.raises(MessageError, match=expected):
        Candidate.from_json(json.dumps(body).encode())


def test_bytes_that_are_not_a_json_object_are_rejected():
    for raw, expected in ((b"\xff\xfe", "not UTF-8"), (b"[1, 2]", "must be a JSON object"), (b"{", "not JSON")):
        with pytest.raises(MessageError, match=expected):
            Candidate.from_json(raw)


@pytest.mark.parametrize("price", [0.0, -1.0, float("nan"), float("inf")])
def test_a_decision_needs_a_positive_finite_price(price):
    decision = json.loads(make_decision("BTCUSDT", "enter_long", 50_000.0).to_json())
    decision["price"] = price
    with pytest.raises(MessageError, match="price must be a (positive|finite) number"):
        Decision.from_json(json.dumps(decision).encode())
