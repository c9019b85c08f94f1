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
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from coin_platform.core.signals import SIDE_OF_SIGNAL, SIGNALS
from coin_platform.settings import PlatformConfig

SCHEMA_VERSION = 1

Action = Literal["buy", "sell", "hold"]


# A candidate carries one candle's features (~16) and a decision its inputs (~10), so a
# valid message is a few KB: anything larger, or with more entries, is refused unread.
MAX_MESSAGE_BYTES = 64 * 1024
MAX_MAPPING_ENTRIES = 256
# Longest excerpt of a bad value quoted in an error (the dead-letter topic keeps the rest).
_SHOWN_CHARS = 80


class MessageError(ValueError):
    """A message is not a valid candidate/decision; the text says which field and why."""


def _show(value: Any) -> str:
    """A short repr of a bad value, so an error stays one readable line whatever the input."""
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else f"{text[:_SHOWN_CHARS]}... ({len(text)} chars)"


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
        raise MessageError(f"{name} is not an ISO-8601 time: {_show(value)}") from None
    if parsed.tzinfo is None:
        raise MessageError(f"{name} has no UTC offset: {_show(value)}")
    try:
        return parsed.astimezone(dt.UTC)
    except OverflowError:  # e.g. 9999-12-31T23:30-05:00 is after the last representable UTC time
        raise MessageError(f"{name} is out of range in UTC: {_show(value)}") from None


def _number(value: Any, name: str) -> float:
    """A finite float from a JSON number; huge integers (10**400) are refused, not overflowed."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if math.isfinite(number):
            return number
    raise MessageError(f"{name} must be a finite number, got {_show(value)}")


def _finite_or_none(values: dict[str, Any], name: str) -> dict[str, float | None]:
    if not isinstance(values, dict):
        raise MessageError(f"{name} must be an object")
    if len(values) > MAX_MAPPING_ENTRIES:
        raise MessageError(f"{name}: {len(values)} entries, at most {MAX_MAPPING_ENTRIES} are allowed")
    out: dict[str, float | None] = {}
    for key, value in values.items():
        try:
            out[key] = None if value is None else _number(value, f"{name}.{key}")
        except MessageError:
            raise MessageError(f"{name}.{key} must be a finite number or null, got {_show(value)}") from None
    return out


def _require(payload: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    if name not in payload:
        raise MessageError(f"missing field {name!r}")
    value = payload[name]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise MessageError(f"{name} must be {getattr(kind, '__name__', kind)}, got {_show(value)}")
    return value


def _decode(raw: bytes, kind: str) -> dict[str, Any]:
    """The JSON object in `raw`: UTF-8 only (json.loads would also guess UTF-16/32), size-bounded."""
    if not isinstance(raw, bytes):
        raise MessageError(f"a message must be bytes, got {type(raw).__name__}")
    if len(raw) > MAX_MESSAGE_BYTES:
        raise MessageError(f"message of {len(raw)} bytes is larger than {MAX_MESSAGE_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MessageError(f"not UTF-8: {exc.reason} at byte {exc.start}") from None
    try:
        payload = json.loads(text)
    except RecursionError:
        raise MessageError("not JSON: nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, and integers beyond Python's 4300-digit conversion limit
        raise MessageError(f"not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise MessageError("a message must be a JSON object")
    if payload.get("schema_version") != SCHEMA_VERSION:
        raise MessageError(f"schema_version {_show(payload.get('schema_version'))} is not {SCHEMA_VERSION}")
    if payload.get("type") != kind:
        raise MessageError(f"type {_show(payload.get('type'))} is not {kind!r}")
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
            raise MessageError(f"signal {_show(self.signal)} is not one of {list(SIGNALS)}")
        if not _number(self.price, "price") > 0:
            raise MessageError(f"price must be a positive number, got {_show(self.price)}")

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
            price=_number(_require(payload, "price", (int, float)), "price"),
            features=_finite_or_none(payload.get("features", {}), "features"),
            detected_at=_utc(payload.get("detected_at"), "detected_at"),
        )
        if payload.get("id") != candidate.id:
            raise MessageError(f"id {_show(payload.get('id'))} does not match its fields ({candidate.id})")
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
            raise MessageError(f"action {_show(self.action)} is not buy, sell or hold")
        if self.signal not in SIGNALS:
            raise MessageError(f"signal {_show(self.signal)} is not one of {list(SIGNALS)}")
        if not 0.0 <= _number(self.confidence, "confidence") <= 1.0:
            raise MessageError(f"confidence {_show(self.confidence)} is not within [0, 1]")
        if not _number(self.price, "price") > 0:
            raise MessageError(f"price must be a positive number, got {_show(self.price)}")

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
            confidence=_number(_require(payload, "confidence", (int, float)), "confidence"),
            model_version=_require(payload, "model_version", str),
            price=_number(_require(payload, "price", (int, float)), "price"),
            candle_close_time=_utc(payload.get("candle_close_time"), "candle_close_time"),
            inputs=_finite_or_none(payload.get("inputs", {}), "inputs"),
            decided_at=_utc(payload.get("decided_at"), "decided_at"),
        )
        if payload.get("id") != decision.id:
            raise MessageError(f"id {_show(payload.get('id'))} does not match its candidate ({decision.id})")
        return decision


@dataclass(frozen=True)
class Allowlist:
    """What the platform trades; a well-formed message naming anything else is foreign and refused."""

    symbols: frozenset[str]
    intervals_by_strategy: Mapping[str, frozenset[str]]

    @classmethod
    def from_config(cls, config: PlatformConfig) -> Allowlist:
        """The configured symbols, and each enabled strategy with the configured intervals it evaluates."""
        return cls(
            symbols=frozenset(config.symbols),
            intervals_by_strategy={
                s.name: frozenset(i for i in config.intervals if not s.intervals or i in s.intervals)
                for s in config.strategies
                if s.enabled
            },
        )

    def check(self, message: Candidate | Decision) -> None:
        """Raise MessageError naming the symbol, strategy or interval that is not configured."""
        if message.symbol not in self.symbols:
            raise MessageError(f"symbol {_show(message.symbol)} is not configured")
        intervals = self.intervals_by_strategy.get(message.strategy)
        if intervals is None:
            raise MessageError(f"strategy {_show(message.strategy)} is not configured (or not enabled)")
        if message.interval not in intervals:
            raise MessageError(f"interval {_show(message.interval)} is not one {message.strategy} evaluates")
