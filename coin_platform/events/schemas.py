"""Messages on the Kafka topics: candidates and decisions, as versioned JSON.

Ids are deterministic (a candidate from strategy, symbol, interval, candle time and
signal; a decision from its candidate), so a redelivered or republished message
carries the id it had the first time and every consumer can deduplicate on it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

SCHEMA_VERSION = 1

Signal = Literal["enter_long", "exit_long", "enter_short", "exit_short"]
Side = Literal["buy", "sell"]
Action = Literal["buy", "sell", "hold"]
SIGNALS: tuple[str, ...] = ("enter_long", "exit_long", "enter_short", "exit_short")
SIDE_OF_SIGNAL: dict[str, str] = {
    "enter_long": "buy",
    "exit_long": "sell",
    "enter_short": "sell",
    "exit_short": "buy",
}


class MessageError(ValueError):
    """A message is not a valid candidate/decision; the text says which field and why."""


def _digest(*parts: object) -> str:
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:32]


def candidate_id(strategy: str, symbol: str, interval: str, open_time: dt.datetime, signal: str) -> str:
    return _digest("candidate", strategy, symbol, interval, _ms(open_time), signal)


def decision_id(candidate: str) -> str:
    return _digest("decision", candidate)


def _ms(value: dt.datetime) -> int:
    return int(value.timestamp() * 1000)


def _utc(value: Any, name: str) -> dt.datetime:
    if not isinstance(value, str):
        raise MessageError(f"{name} must be an ISO-8601 string, got {type(value).__name__}")
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise MessageError(f"{name} is not an ISO-8601 time: {value!r}") from None
    if parsed.tzinfo is None:
        raise MessageError(f"{name} has no UTC offset: {value!r}")
    return parsed.astimezone(dt.UTC)


def _finite_or_none(values: dict[str, Any], name: str) -> dict[str, float | None]:
    if not isinstance(values, dict):
        raise MessageError(f"{name} must be an object")
    out: dict[str, float | None] = {}
    for key, value in values.items():
        if value is None:
            out[key] = None
        elif isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            out[key] = float(value)
        else:
            raise MessageError(f"{name}.{key} must be a finite number or null, got {value!r}")
    return out


def _require(payload: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    if name not in payload:
        raise MessageError(f"missing field {name!r}")
    value = payload[name]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise MessageError(f"{name} must be {getattr(kind, '__name__', kind)}, got {value!r}")
    return value


def _decode(raw: bytes, kind: str) -> dict[str, Any]:
    try:
        payload = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MessageError(f"not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise MessageError("a message must be a JSON object")
    if payload.get("schema_version") != SCHEMA_VERSION:
        raise MessageError(f"schema_version {payload.get('schema_version')!r} is not {SCHEMA_VERSION}")
    if payload.get("type") != kind:
        raise MessageError(f"type {payload.get('type')!r} is not {kind!r}")
    return payload


@dataclass(frozen=True)
class Candidate:
    """A strategy signal on a closed candle."""

    strategy: str
    symbol: str
    interval: str
    open_time: dt.datetime
    close_time: dt.datetime
    signal: str
    price: float  # the candle's close
    features: dict[str, float | None] = field(default_factory=dict)
    detected_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    def __post_init__(self) -> None:
        if self.signal not in SIGNALS:
            raise MessageError(f"signal {self.signal!r} is not one of {list(SIGNALS)}")
        if not (isinstance(self.price, int | float) and math.isfinite(self.price) and self.price > 0):
            raise MessageError(f"price must be a positive number, got {self.price!r}")

    @property
    def id(self) -> str:
        return candidate_id(self.strategy, self.symbol, self.interval, self.open_time, self.signal)

    @property
    def side(self) -> str:
        return SIDE_OF_SIGNAL[self.signal]

    def to_json(self) -> bytes:
        body = asdict(self)
        for key in ("open_time", "close_time", "detected_at"):
            body[key] = body[key].isoformat()
        return json.dumps(
            {"schema_version": SCHEMA_VERSION, "type": "candidate", "id": self.id, "side": self.side, **body},
            sort_keys=True,
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Candidate:
        payload = _decode(raw, "candidate")
        candidate = cls(
            strategy=_require(payload, "strategy", str),
            symbol=_require(payload, "symbol", str),
            interval=_require(payload, "interval", str),
            open_time=_utc(payload.get("open_time"), "open_time"),
            close_time=_utc(payload.get("close_time"), "close_time"),
            signal=_require(payload, "signal", str),
            price=_require(payload, "price", (int, float)),
            features=_finite_or_none(payload.get("features", {}), "features"),
            detected_at=_utc(payload.get("detected_at"), "detected_at"),
        )
        if payload.get("id") != candidate.id:
            raise MessageError(f"id {payload.get('id')!r} does not match its fields ({candidate.id})")
        return candidate


@dataclass(frozen=True)
class Decision:
    """What inference made of a candidate: buy / sell / hold, with its confidence and inputs."""

    candidate_id: str
    strategy: str
    symbol: str
    interval: str
    signal: str
    action: str
    confidence: float
    model_version: str
    price: float  # the candidate's reference price (candle close)
    candle_close_time: dt.datetime
    inputs: dict[str, float | None] = field(default_factory=dict)
    decided_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    def __post_init__(self) -> None:
        if self.action not in ("buy", "sell", "hold"):
            raise MessageError(f"action {self.action!r} is not buy, sell or hold")
        if self.signal not in SIGNALS:
            raise MessageError(f"signal {self.signal!r} is not one of {list(SIGNALS)}")
        if not 0.0 <= self.confidence <= 1.0:
            raise MessageError(f"confidence {self.confidence!r} is not within [0, 1]")

    @property
    def id(self) -> str:
        return decision_id(self.candidate_id)

    def to_json(self) -> bytes:
        body = asdict(self)
        for key in ("candle_close_time", "decided_at"):
            body[key] = body[key].isoformat()
        return json.dumps(
            {"schema_version": SCHEMA_VERSION, "type": "decision", "id": self.id, **body}, sort_keys=True
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Decision:
        payload = _decode(raw, "decision")
        decision = cls(
            candidate_id=_require(payload, "candidate_id", str),
            strategy=_require(payload, "strategy", str),
            symbol=_require(payload, "symbol", str),
            interval=_require(payload, "interval", str),
            signal=_require(payload, "signal", str),
            action=_require(payload, "action", str),
            confidence=float(_require(payload, "confidence", (int, float))),
            model_version=_require(payload, "model_version", str),
            price=float(_require(payload, "price", (int, float))),
            candle_close_time=_utc(payload.get("candle_close_time"), "candle_close_time"),
            inputs=_finite_or_none(payload.get("inputs", {}), "inputs"),
            decided_at=_utc(payload.get("decided_at"), "decided_at"),
        )
        if payload.get("id") != decision.id:
            raise MessageError(f"id {payload.get('id')!r} does not match its candidate ({decision.id})")
        return decision
