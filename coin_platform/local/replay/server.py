"""An offline Binance USD-M REST server: synthetic candles, the weight budget, and injected faults.

Clients, ingestion assets and tests talk to it exactly as to Binance's USD-M
REST API (same paths, parameters, bodies, error codes and rate-limit headers), so the
retrying, rate-limited client is exercised for real without the internet.

* Candles come from ``coin_platform.local.replay.synthetic``: deterministic, so any
  window asked twice, or of a restarted server, answers the same.
* Weight is counted in fixed one-minute windows aligned to the wall-clock
  minute, as Binance does. Going over the budget gets 429 with Retry-After;
  more than three further requests rejected in the same window get a 418 ban
  for ``ban_seconds``, during which every request gets 418.
* Orders: ``POST /fapi/v1/order`` and ``GET /fapi/v1/order`` are SIGNED as on
  Binance (API key header, HMAC-SHA256 over the exact query string + body,
  timestamp within recvWindow). MARKET orders fill at once at the close of the
  symbol's last closed 1m candle, the price the klines endpoint serves, and are
  kept by clientOrderId, so a resend with the same id is refused as a duplicate.
  The default key pair is Binance's published documentation example.
* A fault plan (see ``parse_faults``) makes chosen requests fail in the ways a
  real client must survive: 429, 418, 5xx, slow answers, truncated bodies and
  malformed or impossible rows; for orders also "placed, but the reply is a 503 Unknown
  error", a margin rejection, and an order query that does not see an order
  yet. Requests are numbered per kind of request (klines, order placements,
  order queries) among those the weight budget admitted (the ones an exchange
  would process), counted from start, reset or a new plan; a faulted request
  is charged its weight like any other.
* ``/_replay/stats``, ``POST /_replay/reset`` and ``POST /_replay/faults``
  observe and steer the server from tests; they cost no weight.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import random
import re
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, parse_qsl, urlsplit

from coin_platform.core.intervals import INTERVAL_MS
from coin_platform.local.replay import synthetic
from coin_platform.market.klines import kline_request_weight

WINDOW_MS = 60_000
DEFAULT_KLINES_LIMIT = 500
STRIKES_BEFORE_BAN = 3  # rejected requests tolerated after the first 429 of a window
FAULT_KINDS = (
    "429", "418", "500", "502", "503", "504", "slow", "truncate", "malformed", "bad_candles",
    "placed_503", "margin", "lag",
)
# What a rule's requests are (its on= option): klines, order placements (POST /fapi/v1/order), order queries (GET).
FAULT_TARGETS = ("klines", "order", "query")
# Kinds that only make sense for some targets; the first listed is the default. Others apply to all, default klines.
_KIND_TARGETS = {
    "malformed": ("klines",),
    "bad_candles": ("klines",),
    "placed_503": ("order",),
    "margin": ("order",),
    "lag": ("query",),
}
_TRIGGERS = ("every", "at", "first", "p")
ORDER_PATH = "/fapi/v1/order"
API_KEY_HEADER = "X-MBX-APIKEY"
# The key pair of Binance's published HMAC signing example (USD-M general-info page, "SIGNED Endpoint
# Examples for POST /fapi/v1/order"): documentation values, not anyone's credentials.
DOCS_EXAMPLE_API_KEY = "dbefbc809e3e83c283a984c3a1459732ea7db1360ca80c5c2c8867408d28cc83"
DOCS_EXAMPLE_API_SECRET = "2b5eb11e18796d12d88f13dc27dbbd02c2cc51ff7059765ed9821957d82bb4d9"
DEFAULT_RECV_WINDOW_MS = 5000
MAX_BODY_BYTES = 1 << 20  # far above any order or fault plan; what one request may make the server buffer
_CLIENT_ORDER_ID = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")
_MAX_MARKET_QUANTITY = "100000"  # MARKET_LOT_SIZE maxQty in exchangeInfo
_UNKNOWN_ERROR = "An unknown error occured while processing the request."
_UNKNOWN_ERROR_503 = "Unknown error, please check your request or try again later."
_ORDER_TYPES = [
    "LIMIT",
    "MARKET",
    "STOP",
    "STOP_MARKET",
    "TAKE_PROFIT",
    "TAKE_PROFIT_MARKET",
    "TRAILING_STOP_MARKET",
]


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

    def fires(self, request_number: int) -> bool:
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
    ``slow`` takes ``delay=SECONDS`` (default 2). ``on=klines|order|query`` picks
    the requests a rule counts and fails (default klines): order placements,
    or order queries. 429, 418 and 5xx refuse a request unprocessed (an order
    is not placed); ``slow`` and ``truncate`` spoil the reply of a processed
    one (an order is placed); ``bad_candles`` serves well-formed rows with
    impossible values (see BAD_CANDLES). Order-only kinds: ``placed_503``
    places the order and answers 503 "Unknown error", ``margin`` refuses it
    with -2019; ``lag`` makes an order query answer -2013 for an order that
    exists. Raises ValueError naming the bad item.
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
    allowed = set(_TRIGGERS) | {"seed", "on"} | ({"delay"} if kind == "slow" else set())
    if unknown := sorted(set(options) - allowed):
        raise bad(f"unknown option {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}")
    triggers = [name for name in _TRIGGERS if name in options]
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


@dataclass
class _Window:
    """Accounting for one wall-clock minute."""

    start_ms: int
    weight: int = 0
    requests: int = 0
    rejected_429: int = 0
    rejected_418: int = 0
    strikes: int = 0  # 429s since the window's first over-budget request (or the last ban)

    def as_dict(self) -> dict[str, int]:
        return {
            "window_start_ms": self.start_ms,
            "weight": self.weight,
            "requests": self.requests,
            "rejected_429": self.rejected_429,
            "rejected_418": self.rejected_418,
        }


@dataclass(frozen=True)
class Reply:
    """A response to write: status, JSON-able body, extra headers, and how to send it."""

    status: int
    body: object
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    truncate: bool = False


class ReplayServer:
    """The replay server. ``start()`` serves on a background thread until ``stop()``.

    ``clock`` (seconds since the epoch) drives both the weight windows and
    which candles exist, so tests can pin time.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        weight_limit: int = 2400,
        ban_seconds: float = 120.0,
        faults: str = "",
        extra_symbols: Iterable[str] = (),
        clock: Callable[[], float] = time.time,
        api_key: str = DOCS_EXAMPLE_API_KEY,
        api_secret: str = DOCS_EXAMPLE_API_SECRET,
    ) -> None:
        if weight_limit < 1:
            raise ValueError(f"weight_limit must be positive, got {weight_limit}")
        if ban_seconds <= 0:
            raise ValueError(f"ban_seconds must be positive, got {ban_seconds}")
        self.weight_limit = weight_limit
        self.ban_seconds = ban_seconds
        self.symbols = tuple(dict.fromkeys([*synthetic.DEFAULT_SYMBOLS, *extra_symbols]))
        for symbol in self.symbols:
            synthetic.instrument(symbol)  # fails fast on a malformed symbol
        self._clock = clock
        self._lock = threading.Lock()
        self._fault_spec = faults
        self._fault_rules = parse_faults(faults)
        self._planned: Counter[str] = Counter()  # requests per target since the plan was installed or reset
        self._served: Counter[str] = Counter()  # requests per target since start or reset
        self._faults_injected: Counter[str] = Counter()
        self._api_key = api_key
        self._api_secret = api_secret
        self._orders: dict[str, dict[str, object]] = {}  # by clientOrderId, as GET /fapi/v1/order answers
        self._next_order_id = 1
        self._windows: dict[int, _Window] = {}
        self._banned_until_ms: int | None = None
        self._httpd = ThreadingHTTPServer((host, port), _make_handler(self))
        self._httpd.block_on_close = False  # idle keep-alive connections must not hold up stop()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> ReplayServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="replay-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> ReplayServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def now_ms(self) -> int:
        return int(self._clock() * 1000)

    # -- accounting ---------------------------------------------------------

    def used_weight(self) -> int:
        with self._lock:
            window = self._windows.get(self._window_start(self.now_ms()))
            return window.weight if window else 0

    @staticmethod
    def _window_start(now_ms: int) -> int:
        return now_ms - now_ms % WINDOW_MS

    def admit(self, weight: int, client_ip: str) -> Reply | None:
        """Charge ``weight`` to the current window, or the 429/418 reply that refuses it."""
        now_ms = self.now_ms()
        with self._lock:
            start = self._window_start(now_ms)
            window = self._windows.setdefault(start, _Window(start))
            window.requests += 1
            if self._banned_until_ms is not None and now_ms < self._banned_until_ms:
                window.rejected_418 += 1
                return ban_reply(client_ip, self._banned_until_ms, now_ms)
            if window.weight + weight <= self.weight_limit:
                window.weight += weight
                return None
            if window.strikes > STRIKES_BEFORE_BAN:
                window.strikes = 0
                window.rejected_418 += 1
                self._banned_until_ms = now_ms + int(self.ban_seconds * 1000)
                return ban_reply(client_ip, self._banned_until_ms, now_ms)
            window.strikes += 1
            window.rejected_429 += 1
            retry_after = max(1, math.ceil((start + WINDOW_MS - now_ms) / 1000))
            return self.too_many_requests(client_ip, retry_after)

    def too_many_requests(self, client_ip: str, retry_after: int) -> Reply:
        message = (
            f"Too many requests; current limit of IP({client_ip}) is {self.weight_limit} requests per "
            "minute. Please use WebSocket Streams for live updates to avoid polling the API."
        )
        return Reply(429, {"code": -1003, "msg": message}, {"Retry-After": str(retry_after)})

    def next_fault(self, target: str = "klines") -> tuple[FaultRule, int] | None:
        """Count one admitted request of ``target``; the fault planned for it and how many of its kind so far.

        The first rule that fires wins when several would.
        """
        with self._lock:
            self._served[target] += 1
            self._planned[target] += 1
            number = self._planned[target]
            rule = next((r for r in self._fault_rules if r.target == target and r.fires(number)), None)
            if rule is None:
                return None
            key = rule.kind if target == "klines" else f"{target}:{rule.kind}"
            self._faults_injected[key] += 1
            return rule, self._faults_injected[key]

    def stats(self) -> dict[str, object]:
        with self._lock:
            return {
                "weight_limit": self.weight_limit,
                "ban_seconds": self.ban_seconds,
                "banned_until_ms": self._banned_until_ms,
                "windows": [self._windows[start].as_dict() for start in sorted(self._windows)],
                "faults": self._fault_spec,
                "faults_injected": dict(self._faults_injected),
                "klines_requests": self._served["klines"],
                "order_requests": self._served["order"],
                "order_queries": self._served["query"],
                "orders_placed": len(self._orders),
            }

    def reset(self) -> None:
        """Forget windows, bans, counters and orders; the fault plan stays and counts from 1 again."""
        with self._lock:
            self._windows.clear()
            self._banned_until_ms = None
            self._faults_injected.clear()
            self._served.clear()
            self._planned.clear()
            self._orders.clear()
            self._next_order_id = 1

    def set_faults(self, spec: str) -> None:
        """Replace the fault plan; its request numbers count from the next request of each target."""
        rules = parse_faults(spec)
        with self._lock:
            self._fault_spec, self._fault_rules = spec, rules
            self._planned.clear()

    # -- Binance endpoints --------------------------------------------------

    def exchange_info(self) -> dict[str, object]:
        return {
            "timezone": "UTC",
            "serverTime": self.now_ms(),
            "futuresType": "U_MARGINED",
            "rateLimits": [
                {
                    "rateLimitType": "REQUEST_WEIGHT",
                    "interval": "MINUTE",
                    "intervalNum": 1,
                    "limit": self.weight_limit,
                },
                {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300},
            ],
            "exchangeFilters": [],
            "assets": [
                {"asset": asset, "marginAvailable": True, "autoAssetExchange": "-100"}
                for asset in synthetic.QUOTE_ASSETS
            ],
            "symbols": [_symbol_info(synthetic.instrument(symbol)) for symbol in self.symbols],
        }

    def klines(self, params: dict[str, str]) -> Reply:
        """GET /fapi/v1/klines with Binance's parameter rules and error codes."""
        for name in ("symbol", "interval"):
            if not params.get(name):
                return _mandatory(name)
        if params["symbol"] not in self.symbols:
            return _error(-1121, "Invalid symbol.")
        if params["interval"] not in INTERVAL_MS:
            return _error(-1120, "Invalid interval.")
        numbers: dict[str, int | None] = {}
        for name in ("startTime", "endTime", "limit"):
            text = params.get(name)
            if text is not None and not (text.isascii() and text.isdigit() and len(text) <= 20):
                return _error(
                    -1100,
                    f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'.",
                )
            numbers[name] = int(text) if text is not None else None
        limit = numbers["limit"] if numbers["limit"] is not None else DEFAULT_KLINES_LIMIT
        if not 1 <= limit <= synthetic.MAX_LIMIT:
            return _error(-1130, "Data sent for parameter 'limit' is not valid.")
        start, end = numbers["startTime"], numbers["endTime"]
        if start is not None and end is not None and start > end:
            return _error(-1023, "Start time is greater than end time.")
        rows = synthetic.klines(
            params["symbol"],
            params["interval"],
            start_ms=start,
            end_ms=end,
            limit=limit,
            now_ms=self.now_ms(),
        )
        return Reply(200, rows)

    def faulty_klines(
        self, rule: FaultRule, occurrence: int, params: dict[str, str], client_ip: str
    ) -> Reply:
        """The reply a planned fault turns a klines request into (``occurrence``: 1 for its kind's first)."""
        refusal = self.refusal(rule, client_ip)
        if refusal is not None:
            return refusal
        reply = self.klines(params)
        if rule.kind == "malformed":
            return Reply(200, _malform(reply.body, occurrence)) if reply.status == 200 else reply
        if rule.kind == "bad_candles":
            return Reply(200, _corrupt(reply.body)) if reply.status == 200 else reply
        return _spoil(rule, reply)

    def refusal(self, rule: FaultRule, client_ip: str) -> Reply | None:
        """The reply of a fault that refuses a request before it is processed; None for the other kinds."""
        if rule.kind == "429":
            return self.too_many_requests(client_ip, 1)
        if rule.kind == "418":
            now_ms = self.now_ms()
            return ban_reply(client_ip, now_ms + int(self.ban_seconds * 1000), now_ms)
        if rule.kind in ("500", "502", "504"):
            return _error(-1000, _UNKNOWN_ERROR, status=int(rule.kind))
        if rule.kind == "503":
            return _error(-1000, _UNKNOWN_ERROR_503, status=503)
        if rule.kind == "margin":
            return _error(-2019, "Margin is insufficient.")
        return None

    # -- signed order endpoints --------------------------------------------

    def order_request(self, target: str, api_key: str | None, query: str, body: str, client_ip: str) -> Reply:
        """An admitted POST (target "order") or GET ("query") /fapi/v1/order: its fault, the signature check, the book.

        ``query`` and ``body`` are the raw strings as sent, since the signature covers exactly those bytes.
        """
        fault = self.next_fault(target)
        rule = fault[0] if fault is not None else None
        if rule is not None and (refusal := self.refusal(rule, client_ip)) is not None:
            return refusal
        params, rejection = self.authenticate(api_key, query, body)
        if rejection is not None:
            return rejection
        reply = self.place_order(params) if target == "order" else self.query_order(params)
        if rule is None or reply.status != 200:
            return reply
        if rule.kind == "placed_503":
            return _error(-1000, _UNKNOWN_ERROR_503, status=503)
        if rule.kind == "lag":
            return _error(-2013, "Order does not exist.")
        return _spoil(rule, reply)

    def authenticate(self, api_key: str | None, query: str, body: str) -> tuple[dict[str, str], Reply | None]:
        """Binance's SIGNED checks: the API key, the signature over query + body as sent, then the timestamp."""
        if api_key is None or not hmac.compare_digest(api_key.encode(), self._api_key.encode()):
            return {}, _error(-2015, "Invalid API-key, IP, or permissions for action.", status=401)
        total, sent, signature = (query + body).rpartition("&signature=")
        if not sent or not signature:
            return {}, _mandatory("signature")
        expected = hmac.new(self._api_secret.encode(), total.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature.lower()):
            return {}, _error(-1022, "Signature for this request is not valid.")
        params = dict(parse_qsl(query, keep_blank_values=True))
        params.update(parse_qsl(body, keep_blank_values=True))
        params.pop("signature", None)
        for name in ("timestamp", "recvWindow"):
            text = params.get(name)
            if text is not None and not (text.isascii() and text.isdigit() and len(text) <= 20):
                return {}, _error(
                    -1100, f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'."
                )
        if "timestamp" not in params:
            return {}, _mandatory("timestamp")
        now_ms, timestamp = self.now_ms(), int(params["timestamp"])
        if timestamp >= now_ms + 1000:
            return {}, _error(-1021, "Timestamp for this request was 1000ms ahead of the server's time.")
        if now_ms - timestamp > int(params.get("recvWindow", DEFAULT_RECV_WINDOW_MS)):
            return {}, _error(-1021, "Timestamp for this request is outside of the recvWindow.")
        return params, None

    def place_order(self, params: dict[str, str]) -> Reply:
        """A MARKET order, filled in full at the close of the symbol's last closed 1m candle.

        Other order types are refused (-1014), as are quantities off the lot grid (-1111). reduceOnly is
        echoed, not checked against a position: the replay keeps no account. Unlike Binance, which refuses
        a clientOrderId only while an order with it is open, any reuse is refused (-4116), so a client's
        duplicate protection can be seen to work on filled MARKET orders too.
        """
        for name in ("symbol", "side", "type", "quantity"):
            if not params.get(name):
                return _mandatory(name)
        symbol, side, order_type = params["symbol"], params["side"], params["type"]
        if symbol not in self.symbols:
            return _error(-1121, "Invalid symbol.")
        if side not in ("BUY", "SELL"):
            return _error(-1117, "Invalid side.")
        if order_type not in _ORDER_TYPES:
            return _error(-1116, "Invalid orderType.")
        if order_type != "MARKET":
            return _error(-1014, "Unsupported order combination.")
        spec = synthetic.instrument(symbol)
        try:
            quantity = Decimal(params["quantity"])
        except InvalidOperation:
            quantity = Decimal("NaN")
        if not quantity.is_finite():
            return _error(-1100, "Illegal characters found in parameter 'quantity'.")
        step = Decimal(spec.step_size)
        if quantity <= 0:
            return _error(-4003, "Quantity less than zero.")
        if quantity % step:  # minQty is one step, so this also refuses anything below it
            return _error(-1111, "Precision is over the maximum defined for this asset.")
        if quantity > Decimal(_MAX_MARKET_QUANTITY):
            return _error(-4005, "Quantity greater than max quantity.")
        reduce_only = params.get("reduceOnly", "false").lower()
        if reduce_only not in ("true", "false"):
            return _error(-1130, "Data sent for parameter 'reduceOnly' is not valid.")
        response_type = params.get("newOrderRespType", "ACK")
        if response_type not in ("ACK", "RESULT"):
            return _error(-1136, "Invalid newOrderRespType.")
        client_order_id = params.get("newClientOrderId")
        if client_order_id is not None and not _CLIENT_ORDER_ID.match(client_order_id):
            return _error(-4015, "Client order id is not valid.")
        now_ms = self.now_ms()
        close = int(synthetic.kline_bars(symbol, "1m", end_ms=now_ms - WINDOW_MS, limit=1, now_ms=now_ms).close[-1])
        lots = int(quantity / step)
        with self._lock:
            order_id = self._next_order_id
            client_order_id = client_order_id or f"replay{order_id}"
            if client_order_id in self._orders:
                return _error(-4116, "ClientOrderId is duplicated.")
            self._next_order_id += 1
            order: dict[str, object] = {
                "orderId": order_id,
                "symbol": symbol,
                "status": "FILLED",
                "clientOrderId": client_order_id,
                "price": "0",
                "avgPrice": spec.format_price(close),
                "origQty": spec.format_quantity(lots),
                "executedQty": spec.format_quantity(lots),
                "cumQuote": spec.format_quote(close * lots),
                "timeInForce": "GTC",
                "type": "MARKET",
                "reduceOnly": reduce_only == "true",
                "closePosition": False,
                "side": side,
                "positionSide": "BOTH",
                "stopPrice": "0",
                "workingType": "CONTRACT_PRICE",
                "priceProtect": False,
                "origType": "MARKET",
                "priceMatch": "NONE",
                "selfTradePreventionMode": "NONE",
                "goodTillDate": 0,
                "time": now_ms,
                "updateTime": now_ms,
            }
            self._orders[client_order_id] = order
        answer = {name: value for name, value in order.items() if name != "time"}
        answer["cumQty"] = order["executedQty"]
        if response_type == "ACK":  # the order is acknowledged before it fills, as on Binance
            zero = spec.format_quantity(0)
            answer.update(
                status="NEW", executedQty=zero, cumQty=zero, cumQuote="0", avgPrice=spec.format_price(0)
            )
        return Reply(200, answer)

    def query_order(self, params: dict[str, str]) -> Reply:
        """GET /fapi/v1/order: the stored order by origClientOrderId or orderId, or -2013."""
        if not params.get("symbol"):
            return _mandatory("symbol")
        if params["symbol"] not in self.symbols:
            return _error(-1121, "Invalid symbol.")
        client_order_id, order_id = params.get("origClientOrderId"), params.get("orderId")
        if not client_order_id and not order_id:
            return _error(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
        with self._lock:
            if order_id:
                order = next((o for o in self._orders.values() if str(o["orderId"]) == order_id), None)
            else:
                order = self._orders.get(client_order_id)
            order = dict(order) if order is not None else None
        if order is None or order["symbol"] != params["symbol"]:
            return _error(-2013, "Order does not exist.")
        return Reply(200, order)


def ban_reply(client_ip: str, banned_until_ms: int, now_ms: int) -> Reply:
    message = (
        f"Way too many requests; IP({client_ip}) banned until {banned_until_ms}. "
        "Please use WebSocket Streams for live updates to avoid bans."
    )
    retry_after = max(1, math.ceil((banned_until_ms - now_ms) / 1000))
    return Reply(418, {"code": -1003, "msg": message}, {"Retry-After": str(retry_after)})


def _malform(rows: list[list], occurrence: int) -> list[list]:
    """Spoil one row of a klines body: odd occurrences drop a field, even ones break a price."""
    spoiled = [list(row) for row in rows] or [[0, "0", "0", "0", "0", "0", 59_999, "0", 0, "0", "0", "0"]]
    middle = spoiled[len(spoiled) // 2]
    if occurrence % 2:
        del middle[-1]
    else:
        middle[4] = "not-a-price"
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


def _corrupt(rows: list[list]) -> list[list]:
    """bad_candles: from the middle row on, one row per BAD_CANDLES entry, still a 12-field kline."""
    spoiled = [list(row) for row in rows]
    for row, change in zip(spoiled[len(spoiled) // 2 :], BAD_CANDLES, strict=False):
        for index, value in change(row).items():
            row[index] = value
    return spoiled


def _spoil(rule: FaultRule, reply: Reply) -> Reply:
    """slow / truncate: the request was processed, but its answer comes late or cut short."""
    if rule.kind == "slow":
        return Reply(reply.status, reply.body, reply.headers, delay=rule.delay)
    if rule.kind == "truncate":
        return Reply(reply.status, reply.body, reply.headers, truncate=True)
    return reply


def _error(code: int, msg: str, status: int = 400) -> Reply:
    return Reply(status, {"code": code, "msg": msg})


def _mandatory(name: str) -> Reply:
    return _error(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def _symbol_info(spec: synthetic.Instrument) -> dict[str, object]:
    return {
        "symbol": spec.symbol,
        "pair": spec.symbol,
        "contractType": "PERPETUAL",
        "deliveryDate": 4133404800000,
        "onboardDate": synthetic.EPOCH_MS,
        "status": "TRADING",
        "baseAsset": spec.base_asset,
        "quoteAsset": spec.quote_asset,
        "marginAsset": spec.quote_asset,
        "pricePrecision": spec.price_decimals,
        "quantityPrecision": spec.quantity_decimals,
        "baseAssetPrecision": 8,
        "quotePrecision": 8,
        "underlyingType": "COIN",
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "tickSize": spec.tick_size,
                "minPrice": spec.tick_size,
                "maxPrice": spec.format_price(10 ** (spec.price_decimals + 7)),
            },
            {
                "filterType": "LOT_SIZE",
                "stepSize": spec.step_size,
                "minQty": spec.step_size,
                "maxQty": "1000000",
            },
            {
                "filterType": "MARKET_LOT_SIZE",
                "stepSize": spec.step_size,
                "minQty": spec.step_size,
                "maxQty": "100000",
            },
            {"filterType": "MIN_NOTIONAL", "notional": "5"},
        ],
        "orderTypes": _ORDER_TYPES,
        "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
    }


def _make_handler(server: ReplayServer) -> type[BaseHTTPRequestHandler]:
    class Handler(_ReplayHandler):
        replay = server

    return Handler


class _ReplayHandler(BaseHTTPRequestHandler):
    """Routes Binance paths through the weight budget and the fault plan; /_replay/ paths go around them."""

    replay: ReplayServer
    protocol_version = "HTTP/1.1"  # keep-alive, as clients pool connections to Binance
    server_version = "coin-replay"
    sys_version = ""
    timeout = 60  # drop idle keep-alive connections

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        url = urlsplit(self.path)
        params = {name: values[-1] for name, values in parse_qs(url.query, keep_blank_values=True).items()}
        if url.path == "/_replay/stats":
            self._send(Reply(200, self.replay.stats()))
        elif url.path in _WEIGHTS:
            self._binance(url.path, params, url.query)
        else:
            self._send(_error(-1000, f"Unknown path {url.path}.", status=404))

    def do_POST(self) -> None:  # noqa: N802
        url = urlsplit(self.path)
        path = url.path
        if path == "/_replay/reset":
            self.replay.reset()
            self._send(Reply(200, self.replay.stats()))
        elif path == "/_replay/faults":
            self._set_faults()
        elif path == ORDER_PATH:
            self._place_order(url.query)
        else:
            self._send(_error(-1000, f"Unknown path {path}.", status=404))

    def _set_faults(self) -> None:
        body = self._read_body()
        if body is None:
            return
        try:
            payload = json.loads(body or b"null")
        except ValueError:
            payload = None
        if not isinstance(payload, dict) or not isinstance(payload.get("faults"), str):
            self._send(Reply(400, {"error": 'expected a JSON body {"faults": "<spec>"}'}))
            return
        try:
            self.replay.set_faults(payload["faults"])
        except ValueError as exc:
            self._send(Reply(400, {"error": str(exc)}))
            return
        self._send(Reply(200, self.replay.stats()))

    def _place_order(self, query: str) -> None:
        raw = self._read_body()
        if raw is None:
            return
        body = raw.decode("utf-8", "replace")
        client_ip = self.client_address[0]
        # Orders count against the ORDERS limits, not the IP's request weight; a ban still stops them.
        refusal = self.replay.admit(0, client_ip)
        if refusal is None:
            refusal = self.replay.order_request("order", self.headers.get(API_KEY_HEADER), query, body, client_ip)
        self._send(refusal)

    def _read_body(self) -> bytes | None:
        """The request body, or None once a Content-Length that is no sane byte count is answered.

        A bad length would crash the handler (letters, 10**18) or block it reading to EOF (-1);
        a huge one would make the server buffer it. The connection is closed after the answer,
        as the unread body would be taken for the next request.
        """
        text = self.headers.get("Content-Length", "0")
        if not (text.isascii() and text.isdigit()):
            reply = _error(-1100, f"Content-Length {text[:40]!r} is not a byte count.")
        elif len(text) > len(str(MAX_BODY_BYTES)) or int(text) > MAX_BODY_BYTES:
            reply = _error(-1100, f"Content-Length {text[:40]} is over the {MAX_BODY_BYTES}-byte limit.",
                           status=413)
        else:
            return self.rfile.read(int(text))
        self.close_connection = True
        self._send(reply)
        return None

    def _binance(self, path: str, params: dict[str, str], query: str) -> None:
        client_ip = self.client_address[0]
        refusal = self.replay.admit(_WEIGHTS[path](params), client_ip)
        if refusal is not None:
            self._send(refusal)
        elif path == ORDER_PATH:
            self._send(self.replay.order_request("query", self.headers.get(API_KEY_HEADER), query, "", client_ip))
        elif path == "/fapi/v1/klines":
            fault = self.replay.next_fault()
            self._send(
                self.replay.klines(params)
                if fault is None
                else self.replay.faulty_klines(*fault, params, client_ip)
            )
        elif path == "/fapi/v1/exchangeInfo":
            self._send(Reply(200, self.replay.exchange_info()))
        elif path == "/fapi/v1/time":
            self._send(Reply(200, {"serverTime": self.replay.now_ms()}))
        else:
            self._send(Reply(200, {}))

    def _send(self, reply: Reply) -> None:
        if reply.delay:
            time.sleep(reply.delay)
        body = json.dumps(reply.body, separators=(",", ":")).encode()
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-MBX-USED-WEIGHT-1M", str(self.replay.used_weight()))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        try:
            self.end_headers()
            if reply.truncate:
                self.wfile.write(body[: len(body) // 2])
                self.close_connection = True
            else:
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # a client that timed out on a slow reply has gone
            self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        """Quiet: a busy client would flood the log with access lines."""


def _limit_weight(params: dict[str, str]) -> int:
    text = params.get("limit", "")
    limit = int(text) if text.isascii() and text.isdigit() else DEFAULT_KLINES_LIMIT
    return kline_request_weight(limit)


_WEIGHTS: dict[str, Callable[[dict[str, str]], int]] = {
    "/fapi/v1/ping": lambda params: 1,
    "/fapi/v1/time": lambda params: 1,
    "/fapi/v1/exchangeInfo": lambda params: 1,
    "/fapi/v1/klines": _limit_weight,
    ORDER_PATH: lambda params: 1,  # GET, the order query; POST (placing) is routed on its own
}


def serve(
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    weight_limit: int = 2400,
    ban_seconds: float = 120.0,
    faults: str = "",
    extra_symbols: Iterable[str] = (),
) -> None:
    """Run the server in the foreground until SIGTERM or SIGINT, then shut down cleanly."""
    try:
        server = ReplayServer(
            host,
            port,
            weight_limit=weight_limit,
            ban_seconds=ban_seconds,
            faults=faults,
            extra_symbols=extra_symbols,
        )
    except ValueError as exc:
        raise SystemExit(f"coin replay serve: {exc}") from None
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    with server:
        print(f"replay server listening on {server.url}", flush=True)
        stopping.wait()
