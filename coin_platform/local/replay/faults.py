"""The fault language: a plan of which requests fail how, and what a fault does to a reply.

See ``parse_faults`` for the language. Requests are numbered per kind of request
(klines, funding rates, order placements, order queries) among those the weight budget
admitted, counted from start, reset or a new plan.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from coin_platform.local.replay.protocol import Reply

FAULT_KINDS = (
    "429", "418", "500", "502", "503", "504", "slow", "truncate", "malformed", "bad_candles",
    "placed_503", "margin", "lag", "corrupt_zip", "unpublished",
)
# What a rule's requests are (its on= option): klines, funding rates (GET /fapi/v1/fundingRate),
# order placements (POST /fapi/v1/order), order queries (GET), public archive files (zips and CHECKSUMs).
FAULT_TARGETS = ("klines", "funding", "order", "query", "archive")
# Kinds that only make sense for some targets; the first listed is the default. Others apply to all, default klines.
_KIND_TARGETS = {
    "malformed": ("klines", "funding"),
    "bad_candles": ("klines",),
    "placed_503": ("order",),
    "margin": ("order",),
    "lag": ("query",),
    "corrupt_zip": ("archive",),
    "unpublished": ("archive",),
}
_TRIGGERS = ("every", "at", "first", "p")


@dataclass(frozen=True)
class FaultRule:
    """One item of a fault plan: which requests (1-based, among its target's) get which fault."""

    kind: str
    target: str = "klines"
    every: int | None = None
    at: frozenset[int] = frozenset()
    first: int | None = None
    probability: float | None = None
    seed: int = 0
    delay: float = 2.0
    file: str | None = None

    def fires(self, request_number: int, file: str | None = None) -> bool:
        if self.file is not None and self.file != file:
            return False
        if self.every is not None:
            return request_number % self.every == 0
        if self.first is not None:
            return request_number <= self.first
        if self.probability is not None:
            draw = random.Random(f"{self.kind}:{self.seed}:{request_number}").random()
            return draw < self.probability
        return request_number in self.at


def parse_faults(spec: str) -> tuple[FaultRule, ...]:
    """Parse a fault plan: comma-separated ``KIND:option=value[:option=value...]``.

    KIND is one of FAULT_KINDS. Exactly one trigger: ``every=N`` (N, 2N, ...),
    ``at=N[+M...]`` (those requests), ``first=N``, or ``p=P`` with an optional
    ``seed=S`` (a seeded draw per request, so a plan replays identically).
    ``slow`` takes ``delay=SECONDS`` (default 2). ``on=klines|funding|order|query|archive`` picks
    the requests a rule counts and fails (default klines): funding-rate requests, order
    placements, order queries, or public archive files; ``file=NAME`` (archive only) limits a
    rule to one file (its zip and CHECKSUM), and stands in for the trigger (every request of it).
    429, 418 and 5xx refuse a request unprocessed (an order
    is not placed); ``slow`` and ``truncate`` spoil the reply of a processed
    one (an order is placed); ``malformed`` breaks a kline row or a funding
    item; ``bad_candles`` serves well-formed rows with
    impossible values (see BAD_CANDLES). Order-only kinds: ``placed_503``
    places the order and answers 503 "Unknown error", ``margin`` refuses it
    with -2019; ``lag`` makes an order query answer -2013 for an order that
    exists. Archive-only kinds: ``corrupt_zip`` serves a zip that does not match its CHECKSUM,
    ``unpublished`` answers 404 for a file that exists. Raises ValueError naming the bad item.
    """
    rules = []
    for item in (part.strip() for part in spec.split(",")):
        if item:
            rules.append(_parse_fault_item(item))
    return tuple(rules)


def _parse_fault_item(item: str) -> FaultRule:
    kind, *pairs = (piece.strip() for piece in item.split(":"))

    def bad(reason: str) -> ValueError:
        return ValueError(f"bad fault item {item!r}: {reason}")

    if kind not in FAULT_KINDS:
        raise bad(f"unknown kind {kind!r}; expected one of {', '.join(FAULT_KINDS)}")
    options: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not value:
            raise bad(f"expected option=value, got {pair!r}")
        if name in options:
            raise bad(f"option {name!r} given twice")
        options[name] = value
    allowed = set(_TRIGGERS) | {"seed", "on", "file"} | ({"delay"} if kind == "slow" else set())
    if unknown := sorted(set(options) - allowed):
        raise bad(f"unknown option {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}")
    if "file" in options and options.get("on", _KIND_TARGETS.get(kind, ("klines",))[0]) != "archive":
        raise bad("file= applies to on=archive")
    triggers = [name for name in _TRIGGERS if name in options]
    if "file" in options and not triggers:
        options["every"] = "1"
        triggers = ["every"]
    if len(triggers) != 1:
        raise bad("needs exactly one of every=N, at=N[+M...], first=N, p=P")
    if "seed" in options and "p" not in options:
        raise bad("seed only applies to p=")
    targets = _KIND_TARGETS.get(kind, FAULT_TARGETS)
    target = options.get("on", targets[0])
    if target not in targets:
        raise bad(f"{kind} applies to on={'|'.join(targets)}")
    try:
        rule = FaultRule(
            kind=kind,
            target=target,
            every=_positive(options["every"]) if "every" in options else None,
            at=frozenset(_positive(n) for n in options["at"].split("+")) if "at" in options else frozenset(),
            first=_positive(options["first"]) if "first" in options else None,
            probability=float(options["p"]) if "p" in options else None,
            seed=int(options.get("seed", "0")),
            delay=float(options.get("delay", "2")),
            file=options.get("file"),
        )
    except ValueError as exc:
        raise bad(str(exc)) from None
    if rule.probability is not None and not 0.0 <= rule.probability <= 1.0:
        raise bad("p must be within 0..1")
    if not 0.0 <= rule.delay <= 600.0:
        raise bad("delay must be within 0..600 seconds")
    return rule


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(f"expected a positive integer, got {text!r}")
    return value



class FaultPlan:
    """The installed plan and its request counters; ``next_fault`` numbers each admitted request."""

    def __init__(self, spec: str = "", lock: threading.RLock | None = None) -> None:
        self._lock = lock or threading.RLock()
        self._fault_spec = spec
        self._fault_rules = parse_faults(spec)
        self._planned: Counter[str] = Counter()  # requests per target since the plan was installed or reset
        self._served: Counter[str] = Counter()  # requests per target since start or reset
        self._faults_injected: Counter[str] = Counter()

    def next_fault(self, target: str = "klines", file: str | None = None) -> tuple[FaultRule, int] | None:
        """Count one admitted request of ``target`` (of archive ``file``); the fault planned for it and how many
        of its kind so far.

        The first rule that fires wins when several would.
        """
        with self._lock:
            self._served[target] += 1
            self._planned[target] += 1
            number = self._planned[target]
            rule = next((r for r in self._fault_rules if r.target == target and r.fires(number, file)), None)
            if rule is None:
                return None
            key = rule.kind if target == "klines" else f"{target}:{rule.kind}"
            self._faults_injected[key] += 1
            return rule, self._faults_injected[key]

    def stats(self) -> dict[str, object]:
        with self._lock:
            return {
                "faults": self._fault_spec,
                "faults_injected": dict(self._faults_injected),
                "klines_requests": self._served["klines"],
                "funding_requests": self._served["funding"],
                "order_requests": self._served["order"],
                "order_queries": self._served["query"],
                "archive_requests": self._served["archive"],
            }

    def reset(self) -> None:
        """Forget the counters; the plan stays and counts from 1 again."""
        with self._lock:
            self._faults_injected.clear()
            self._served.clear()
            self._planned.clear()

    def set_faults(self, spec: str) -> None:
        """Replace the fault plan; its request numbers count from the next request of each target."""
        rules = parse_faults(spec)
        with self._lock:
            self._fault_spec, self._fault_rules = spec, rules
            self._planned.clear()


def malform(rows: list[list], occurrence: int) -> list[list]:
    """Spoil one row of a klines body: odd occurrences drop a field, even ones break a price."""
    spoiled = [list(row) for row in rows] or [[0, "0", "0", "0", "0", "0", 59_999, "0", 0, "0", "0", "0"]]
    middle = spoiled[len(spoiled) // 2]
    if occurrence % 2:
        del middle[-1]
    else:
        middle[4] = "not-a-price"
    return spoiled


def malform_funding(items: list[dict], occurrence: int) -> list[dict]:
    """Spoil one item of a fundingRate body: odd occurrences drop the rate, even ones break it."""
    spoiled = [dict(item) for item in items] or [{"symbol": "BTCUSDT", "fundingTime": 0, "fundingRate": "0"}]
    middle = spoiled[len(spoiled) // 2]
    if occurrence % 2:
        del middle["fundingRate"]
    else:
        middle["fundingRate"] = "not-a-rate"
    return spoiled


# (field index -> new value from the row) per bad candle: close NaN; close = high = inf; low < 0;
# high < low; open > high; negative volume.
BAD_CANDLES: tuple[Callable[[list], dict[int, str]], ...] = (
    lambda row: {4: "NaN"},
    lambda row: {2: "inf", 4: "inf"},
    lambda row: {3: "-" + row[3]},
    lambda row: {2: str(float(row[3]) / 2)},
    lambda row: {1: str(float(row[2]) * 2)},
    lambda row: {5: str(-1 - float(row[5]))},
)


def corrupt(rows: list[list]) -> list[list]:
    """bad_candles: from the middle row on, one row per BAD_CANDLES entry, still a 12-field kline."""
    spoiled = [list(row) for row in rows]
    for row, change in zip(spoiled[len(spoiled) // 2 :], BAD_CANDLES, strict=False):
        for index, value in change(row).items():
            row[index] = value
    return spoiled


def spoil(rule: FaultRule, reply: Reply) -> Reply:
    """slow / truncate: the request was processed, but its answer comes late or cut short."""
    if rule.kind == "slow":
        return Reply(reply.status, reply.body, reply.headers, delay=rule.delay)
    if rule.kind == "truncate":
        return Reply(reply.status, reply.body, reply.headers, truncate=True)
    return reply
