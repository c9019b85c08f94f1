"""ReplayServer: the replay's parts behind one lock and one HTTP handler; ``serve`` for `coin replay serve`.

The handler routes Binance paths through the weight budget and the fault plan to the
market and order endpoints; /_replay/ paths go around them.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from coin_platform.local.replay import market, public_archive, synthetic
from coin_platform.local.replay.faults import FaultPlan, FaultRule, corrupt, malform, malform_funding, spoil
from coin_platform.local.replay.orders import DOCS_EXAMPLE_API_KEY, DOCS_EXAMPLE_API_SECRET, OrderBook
from coin_platform.local.replay.protocol import (
    API_KEY_HEADER,
    ORDER_PATH,
    UNKNOWN_ERROR,
    UNKNOWN_ERROR_503,
    Reply,
    error_reply,
)
from coin_platform.local.replay.weights import REQUEST_WEIGHTS, WeightBudget
from coin_platform.market.client import FUNDING_RATE_PATH, FUNDING_REQUESTS_PER_WINDOW

MAX_BODY_BYTES = 1 << 20  # far above any order or fault plan; what one request may make the server buffer


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
        funding_limit: int = FUNDING_REQUESTS_PER_WINDOW,
        api_key: str = DOCS_EXAMPLE_API_KEY,
        api_secret: str = DOCS_EXAMPLE_API_SECRET,
    ) -> None:
        self._clock = clock
        # One lock for every part, so stats() and reset() see and change them together, as before the split.
        self._lock = threading.RLock()
        self.budget = WeightBudget(weight_limit, ban_seconds, self.now_ms, self._lock, funding_limit=funding_limit)
        self.symbols = tuple(dict.fromkeys([*synthetic.DEFAULT_SYMBOLS, *extra_symbols]))
        for symbol in self.symbols:
            synthetic.instrument(symbol)  # fails fast on a malformed symbol
        self.faults = FaultPlan(faults, self._lock)
        self.orders = OrderBook(self.symbols, self.now_ms, api_key, api_secret, self._lock)
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

    @property
    def weight_limit(self) -> int:
        return self.budget.weight_limit

    @property
    def ban_seconds(self) -> float:
        return self.budget.ban_seconds

    # -- accounting ---------------------------------------------------------

    def used_weight(self) -> int:
        return self.budget.used_weight()

    def admit(self, weight: int, client_ip: str, *, funding: bool = False) -> Reply | None:
        """Charge ``weight`` to the current window (``funding``: and one fundingRate request to its limit),
        or the 429/418 reply that refuses it."""
        return self.budget.admit(weight, client_ip, funding=funding)

    def next_fault(self, target: str = "klines", file: str | None = None) -> tuple[FaultRule, int] | None:
        """Count one admitted request of ``target`` (archive: of ``file``); the fault planned for it and how
        many of its kind so far."""
        return self.faults.next_fault(target, file)

    def stats(self) -> dict[str, object]:
        with self._lock:
            return {**self.budget.stats(), **self.faults.stats(), "orders_placed": self.orders.placed()}

    def reset(self) -> None:
        """Forget windows, bans, counters and orders; the fault plan stays and counts from 1 again."""
        with self._lock:
            self.budget.reset()
            self.faults.reset()
            self.orders.reset()

    def set_faults(self, spec: str) -> None:
        """Replace the fault plan; its request numbers count from the next request of each target."""
        self.faults.set_faults(spec)

    # -- Binance endpoints --------------------------------------------------

    def exchange_info(self) -> dict[str, object]:
        return market.exchange_info(self.symbols, self.weight_limit, self.now_ms())

    def klines(self, params: dict[str, str]) -> Reply:
        """GET /fapi/v1/klines with Binance's parameter rules and error codes."""
        return market.klines(self.symbols, params, self.now_ms())

    def faulty_klines(
        self, rule: FaultRule, occurrence: int, params: dict[str, str], client_ip: str
    ) -> Reply:
        """The reply a planned fault turns a klines request into (``occurrence``: 1 for its kind's first)."""
        refusal = self.refusal(rule, client_ip)
        if refusal is not None:
            return refusal
        reply = self.klines(params)
        if rule.kind == "malformed":
            return Reply(200, malform(reply.body, occurrence)) if reply.status == 200 else reply
        if rule.kind == "bad_candles":
            return Reply(200, corrupt(reply.body)) if reply.status == 200 else reply
        return spoil(rule, reply)

    def funding_rates(self, params: dict[str, str]) -> Reply:
        """GET /fapi/v1/fundingRate with Binance's parameter rules and error codes."""
        return market.funding_rates(self.symbols, params, self.now_ms())

    def faulty_funding_rates(self, rule: FaultRule, occurrence: int, params: dict[str, str], client_ip: str) -> Reply:
        """The reply a planned fault turns a fundingRate request into (``occurrence``: 1 for its kind's first)."""
        refusal = self.refusal(rule, client_ip)
        if refusal is not None:
            return refusal
        reply = self.funding_rates(params)
        if rule.kind == "malformed":
            return Reply(200, malform_funding(reply.body, occurrence)) if reply.status == 200 else reply
        return spoil(rule, reply)

    def refusal(self, rule: FaultRule, client_ip: str) -> Reply | None:
        """The reply of a fault that refuses a request before it is processed; None for the other kinds."""
        if rule.kind == "429":
            return self.budget.too_many_requests(client_ip, 1)
        if rule.kind == "418":
            return self.budget.ban(client_ip)
        if rule.kind in ("500", "502", "504"):
            return error_reply(-1000, UNKNOWN_ERROR, status=int(rule.kind))
        if rule.kind == "503":
            return error_reply(-1000, UNKNOWN_ERROR_503, status=503)
        if rule.kind == "margin":
            return error_reply(-2019, "Margin is insufficient.")
        return None

    # -- the public kline archive (no request weight, as on data.binance.vision) -----

    def archive_request(self, path: str, client_ip: str) -> Reply:
        """GET of an archive zip or CHECKSUM: the file if published, 404 if not; its planned fault."""
        named = public_archive.archive_file_of(path, self.symbols)
        if named is None:
            return Reply(404, b"NoSuchKey", {"Content-Type": "text/plain"})
        file, checksum = named
        fault = self.next_fault("archive", file.name)
        rule = fault[0] if fault is not None else None
        if rule is not None and (refusal := self.refusal(rule, client_ip)) is not None:
            return refusal
        if not public_archive.is_published(file, self.now_ms()) or (rule is not None and rule.kind == "unpublished"):
            return Reply(404, b"NoSuchKey", {"Content-Type": "text/plain"})
        if checksum:
            reply = Reply(200, public_archive.checksum_text(file), {"Content-Type": "text/plain"})
        else:
            data = public_archive.archive_zip(file)[0]
            if rule is not None and rule.kind == "corrupt_zip":
                data = public_archive.corrupt_zip(data)
            reply = Reply(200, data, {"Content-Type": "application/zip"})
        return reply if rule is None else spoil(rule, reply)

    # -- signed order endpoints --------------------------------------------

    def order_request(self, target: str, api_key: str | None, query: str, body: str, client_ip: str) -> Reply:
        """An admitted POST (target "order") or GET ("query") /fapi/v1/order: its fault, the signature check, the book.

        ``query`` and ``body`` are the raw strings as sent, since the signature covers exactly those bytes.
        """
        fault = self.next_fault(target)
        rule = fault[0] if fault is not None else None
        if rule is not None and (refusal := self.refusal(rule, client_ip)) is not None:
            return refusal
        params, rejection = self.orders.authenticate(api_key, query, body)
        if rejection is not None:
            return rejection
        reply = self.orders.place_order(params) if target == "order" else self.orders.query_order(params)
        if rule is None or reply.status != 200:
            return reply
        if rule.kind == "placed_503":
            return error_reply(-1000, UNKNOWN_ERROR_503, status=503)
        if rule.kind == "lag":
            return error_reply(-2013, "Order does not exist.")
        return spoil(rule, reply)


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
        elif url.path in REQUEST_WEIGHTS:
            self._binance(url.path, params, url.query)
        elif url.path.startswith("/data/"):
            self._send(self.replay.archive_request(url.path, self.client_address[0]))
        else:
            self._send(error_reply(-1000, f"Unknown path {url.path}.", status=404))

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
            self._send(error_reply(-1000, f"Unknown path {path}.", status=404))

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
            reply = error_reply(-1100, f"Content-Length {text[:40]!r} is not a byte count.")
        elif len(text) > len(str(MAX_BODY_BYTES)) or int(text) > MAX_BODY_BYTES:
            reply = error_reply(-1100, f"Content-Length {text[:40]} is over the {MAX_BODY_BYTES}-byte limit.",
                           status=413)
        else:
            return self.rfile.read(int(text))
        self.close_connection = True
        self._send(reply)
        return None

    def _binance(self, path: str, params: dict[str, str], query: str) -> None:
        client_ip = self.client_address[0]
        refusal = self.replay.admit(REQUEST_WEIGHTS[path](params), client_ip, funding=path == FUNDING_RATE_PATH)
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
        elif path == FUNDING_RATE_PATH:
            fault = self.replay.next_fault("funding")
            self._send(
                self.replay.funding_rates(params)
                if fault is None
                else self.replay.faulty_funding_rates(*fault, params, client_ip)
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
        raw = isinstance(reply.body, bytes)  # an archive file, with its own Content-Type; JSON otherwise
        body = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body, separators=(",", ":")).encode()
        self.send_response(reply.status)
        if not raw:
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


def serve(
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    weight_limit: int = 2400,
    ban_seconds: float = 120.0,
    faults: str = "",
    extra_symbols: Iterable[str] = (),
    funding_limit: int = FUNDING_REQUESTS_PER_WINDOW,
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
            funding_limit=funding_limit,
        )
    except ValueError as exc:
        raise SystemExit(f"coin replay serve: {exc}") from None
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    with server:
        print(f"replay server listening on {server.url}", flush=True)
        stopping.wait()
