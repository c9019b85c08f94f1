"""An offline Binance USD-M REST server: synthetic candles, the weight budget, and injected faults.

Clients, ingestion assets and tests talk to it exactly as to Binance's USD-M
REST API (same paths, parameters, bodies, error codes and rate-limit headers), so the
retrying, rate-limited client is exercised for real without the internet.

* Candles and funding rates come from ``synthetic``: deterministic, so any
  window asked twice, or of a restarted server, answers the same.
* Weight (``weights``) is counted in fixed one-minute windows aligned to the wall-clock
  minute, as Binance does; fundingRate costs no weight but one request of its own limit
  (500 per 5-minute window). Going over a budget gets 429 with Retry-After;
  more than three further requests rejected in the same window get a 418 ban
  for ``ban_seconds``, during which every request gets 418.
* Orders (``orders``): ``POST /fapi/v1/order`` and ``GET /fapi/v1/order`` are SIGNED as on
  Binance (API key header, HMAC-SHA256 over the exact query string + body,
  timestamp within recvWindow). MARKET orders fill at once at the close of the
  symbol's last closed 1m candle, the price the klines endpoint serves, and are
  kept by clientOrderId, so a resend with the same id is refused as a duplicate.
  The default key pair is Binance's published documentation example.
* A fault plan (``faults``, see ``parse_faults``) makes chosen requests fail in the ways a
  real client must survive: 429, 418, 5xx, slow answers, truncated bodies and
  malformed or impossible rows; for orders also "placed, but the reply is a 503 Unknown
  error", a margin rejection, and an order query that does not see an order
  yet. Requests are numbered per kind of request (klines, funding rates, order
  placements, order queries) among those the weight budget admitted (the ones an exchange
  would process), counted from start, reset or a new plan; a faulted request
  is charged its weight like any other.
* ``/_replay/stats``, ``POST /_replay/reset`` and ``POST /_replay/faults``
  observe and steer the server from tests; they cost no weight.

``server`` holds ReplayServer (the parts behind one lock), its HTTP handler and ``serve``
(`coin replay serve`); ``market`` the exchangeInfo, klines and fundingRate endpoints; ``protocol`` the
paths, headers and reply shape they share.
"""

from coin_platform.local.replay.faults import BAD_CANDLES, FAULT_KINDS, FAULT_TARGETS, FaultRule, parse_faults
from coin_platform.local.replay.orders import DOCS_EXAMPLE_API_KEY, DOCS_EXAMPLE_API_SECRET
from coin_platform.local.replay.protocol import API_KEY_HEADER, ORDER_PATH, Reply
from coin_platform.local.replay.server import ReplayServer, serve
from coin_platform.local.replay.weights import STRIKES_BEFORE_BAN, WINDOW_MS

__all__ = [
    "API_KEY_HEADER",
    "BAD_CANDLES",
    "DOCS_EXAMPLE_API_KEY",
    "DOCS_EXAMPLE_API_SECRET",
    "FAULT_KINDS",
    "FAULT_TARGETS",
    "ORDER_PATH",
    "STRIKES_BEFORE_BAN",
    "WINDOW_MS",
    "FaultRule",
    "ReplayServer",
    "Reply",
    "parse_faults",
    "serve",
]
