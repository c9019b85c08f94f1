"""An offline Binance USD-M REST server: synthetic candles, the weight budget, and injected faults.

Clients, ingestion assets and tests talk to it exactly as to Binance's USD-M
REST API (same paths, parameters, bodies, error codes and rate-limit headers), so the
retrying, rate-limited client is exercised for real without the internet.

* Candles come from ``coin_platform.market.synthetic``: deterministic, so any
  window asked twice, or of a restarted server, answers the same.
* Weight is counted in fixed one-minute windows aligned to the wall-clock
  minute, as Binance does. Going over the budget gets 429 with Retry-After;
  more than three further requests rejected in the same window get a 418 ban
  for ``ban_seconds``, during which every request gets 418.
* A fault plan (see ``parse_faults``) makes chosen /fapi/v1/klines requests
  fail in the ways a real client must survive: 429, 418, 5xx, slow answers,
  truncated bodies and malformed rows. Requests are numbered among the klines
  requests the weight budget admitted (the ones an exchange would process),
  counted from start, reset or a new plan; a faulted request is charged its
  weight like any other.
* ``/_replay/stats``, ``POST /_replay/reset`` and ``POST /_replay/faults``
  observe and steer the server from tests; they cost no weight.
"""

from __future__ import annotations

import json
import math
import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from coin_platform.market import synthetic
from coin_platform.market.intervals import INTERVAL_MS
from coin_platform.market.klines import kline_request_weight

WINDOW_MS = 60_000
DEFAULT_KLINES_LIMIT = 500
STRIKES_BEFORE_BAN = 3  # rejected requests tolerated after the first 429 of a window
FAULT_KINDS = ("429", "418", "500", "502", "503", "504", "slow", "truncate", "malformed")
_TRIGGERS = ("every", "at", "first", "p")
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
    """One item of a fault plan: which klines requests (1-based) get which fault."""

    kind: str
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
    ``slow`` takes ``delay=SECONDS`` (default 2). Raises ValueError naming the bad item.
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
    allowed = set(_TRIGGERS) | {"seed"} | ({"delay"} if kind == "slow" else set())
    if unknown := sorted(set(options) - allowed):
        raise bad(f"unknown option {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}")
    triggers = [name for name in _TRIGGERS if name in options]
    if len(triggers) != 1:
        raise bad("needs exactly one of every=N, at=N[+M...], first=N, p=P")
    if "seed" in options and "p" not in options:
        raise bad("seed only applies to p=")
    try:
        rule = FaultRule(
            kind=kind,
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
        self._fault_requests = 0  # klines requests since the plan was installed or reset
        self._klines_requests = 0
        self._faults_injected: Counter[str] = Counter()
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

    def next_fault(self) -> tuple[FaultRule, int] | None:
        """Count one admitted klines request; the fault planned for it and how many of its kind so far.

        The first rule that fires wins when several would.
        """
        with self._lock:
            self._klines_requests += 1
            self._fault_requests += 1
            rule = next((r for r in self._fault_rules if r.fires(self._fault_requests)), None)
            if rule is None:
                return None
            self._faults_injected[rule.kind] += 1
            return rule, self._faults_injected[rule.kind]

    def stats(self) -> dict[str, object]:
        with self._lock:
            return {
                "weight_limit": self.weight_limit,
                "ban_seconds": self.ban_seconds,
                "banned_until_ms": self._banned_until_ms,
                "windows": [self._windows[start].as_dict() for start in sorted(self._windows)],
                "faults": self._fault_spec,
                "faults_injected": dict(self._faults_injected),
                "klines_requests": self._klines_requests,
            }

    def reset(self) -> None:
        """Forget windows, bans and counters; the fault plan stays and counts from 1 again."""
        with self._lock:
            self._windows.clear()
            self._banned_until_ms = None
            self._faults_injected.clear()
            self._klines_requests = 0
            self._fault_requests = 0

    def set_faults(self, spec: str) -> None:
        """Replace the fault plan; its request numbers count from the next klines request."""
        rules = parse_faults(spec)
        with self._lock:
            self._fault_spec, self._fault_rules, self._fault_requests = spec, rules, 0

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
                return _error(
                    -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
                )
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
        if rule.kind == "429":
            return self.too_many_requests(client_ip, 1)
        if rule.kind == "418":
            now_ms = self.now_ms()
            return ban_reply(client_ip, now_ms + int(self.ban_seconds * 1000), now_ms)
        if rule.kind in ("500", "502", "504"):
            return _error(-1000, _UNKNOWN_ERROR, status=int(rule.kind))
        if rule.kind == "503":
            return _error(-1000, _UNKNOWN_ERROR_503, status=503)
        reply = self.klines(params)
        if rule.kind == "slow":
            return Reply(reply.status, reply.body, reply.headers, delay=rule.delay)
        if rule.kind == "truncate":
            return Reply(reply.status, reply.body, reply.headers, truncate=True)
        return Reply(200, _malform(reply.body, occurrence)) if reply.status == 200 else reply


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


def _error(code: int, msg: str, status: int = 400) -> Reply:
    return Reply(status, {"code": code, "msg": msg})


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
            self._binance(url.path, params)
        else:
            self._send(_error(-1000, f"Unknown path {url.path}.", status=404))

    def do_POST(self) -> None:  # noqa: N802
        path = urlsplit(self.path).path
        if path == "/_replay/reset":
            self.replay.reset()
            self._send(Reply(200, self.replay.stats()))
        elif path == "/_replay/faults":
            self._set_faults()
        else:
            self._send(_error(-1000, f"Unknown path {path}.", status=404))

    def _set_faults(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            payload = json.loads(self.rfile.read(length) or b"null")
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

    def _binance(self, path: str, params: dict[str, str]) -> None:
        client_ip = self.client_address[0]
        refusal = self.replay.admit(_WEIGHTS[path](params), client_ip)
        if refusal is not None:
            self._send(refusal)
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
        self.end_headers()
        if reply.truncate:
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
        else:
            self.wfile.write(body)

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
