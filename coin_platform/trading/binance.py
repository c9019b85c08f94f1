"""Signed MARKET orders on Binance USD-M futures, placed at most once per client order id.

The client order id is the decision id, and Binance's order query by that id is what makes a
resend safe. Before sending, and whenever a send's outcome is unknown (a 5xx such as 503 "Unknown
error", a timeout, a dropped connection, an unreadable reply), the broker asks
``GET /fapi/v1/order?origClientOrderId=``: an order found there is returned and never sent again;
only -2013 "Order does not exist." makes a (re)send safe. A resend refused as a duplicate id (-4116)
is resolved by the same query. The query, not -4116, is the real guard: Binance refuses a duplicate
id only while the first order is open, and a MARKET order is filled at once.

Safety: both keys are required; they are kept as SecretStr and never put into messages or reprs;
orders go to the Binance testnet only, unless ``live_trading`` is set, or to a loopback URL (the
replay server) that the caller names as ``base_url`` with ``allow_test_endpoint=True``. No value of
a setting alone can send an order to the live API without LIVE_TRADING.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any, Literal
from urllib.parse import SplitResult, urlsplit

import requests
from pydantic import SecretStr

from coin_platform.binance.errors import (
    BinanceAPIError,
    BinanceError,
    BinanceUnavailableError,
    IPBannedError,
    RateLimitedError,
)
from coin_platform.binance.http import (
    BinanceHttp,
    Closing,
    Credentials,
    MalformedResponse,
    RetryPolicy,
)
from coin_platform.binance.weights import WeightLimiter
from coin_platform.market.client import BinanceFuturesClient
from coin_platform.settings import BINANCE_TESTNET_URL
from coin_platform.trading.orders import (
    BrokerRejected,
    Fill,
    OrderOutcomeUnknown,
    OrderRequest,
    OrderResult,
    OrderStatus,
)

log = logging.getLogger(__name__)


ORDER_PATH = "/fapi/v1/order"
NO_SUCH_ORDER = -2013
DUPLICATED_CLIENT_ORDER_ID = -4116
MISSING_KEYS = "BINANCE_API_KEY and BINANCE_API_SECRET are required for trading.broker=binance"
_HINTS = {
    -1022: "check BINANCE_API_SECRET",
    -2014: "check BINANCE_API_KEY",
    -2015: "check BINANCE_API_KEY, its permissions and IP whitelist",
}
# Binance statuses as OrderResult spells them; EXPIRED_IN_MATCH is an expiry by self-trade prevention.
_STATUSES: dict[str, OrderStatus] = {
    "NEW": "NEW",
    "PARTIALLY_FILLED": "PARTIALLY_FILLED",
    "FILLED": "FILLED",
    "CANCELED": "CANCELED",
    "REJECTED": "REJECTED",
    "EXPIRED": "EXPIRED",
    "EXPIRED_IN_MATCH": "EXPIRED",
}


class TradingConfigError(ValueError):
    """The broker cannot be built as configured: missing keys, or a live endpoint without LIVE_TRADING."""


def order_endpoint(base_url: str, *, live_trading: bool, allow_test_endpoint: bool = False) -> str:
    """The base URL orders may go to, or TradingConfigError before anything is sent.

    Without ``live_trading`` only the Binance testnet qualifies, and, when the caller also passes
    ``allow_test_endpoint=True``, a loopback URL such as the replay server's. The flag cannot open a
    remote host, so a mistyped or swapped URL never reaches the live API.
    """
    url = base_url.strip().rstrip("/")
    parts = urlsplit(url)
    if live_trading or _is_testnet(parts):
        return url
    if allow_test_endpoint and _is_loopback(parts):
        return url
    hint = "; allow_test_endpoint admits loopback URLs only" if allow_test_endpoint else ""
    raise TradingConfigError(
        f"refusing to place orders on {_origin(parts)}: it is not the Binance testnet ({BINANCE_TESTNET_URL})"
        f"{hint}. Set LIVE_TRADING=1 to trade on it with real money."
    )


def _is_testnet(parts: SplitResult) -> bool:
    testnet = urlsplit(BINANCE_TESTNET_URL)
    return (
        parts.scheme == testnet.scheme
        and parts.hostname == testnet.hostname
        and _port(parts) in (None, 443)
        and parts.username is None
        and parts.path == ""
        and not parts.query
        and not parts.fragment
    )


def _is_loopback(parts: SplitResult) -> bool:
    if parts.scheme not in ("http", "https") or parts.username is not None or parts.query or not parts.hostname:
        return False
    if parts.hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False


def _port(parts: SplitResult) -> int | None:
    try:
        return parts.port
    except ValueError:
        return -1


def _origin(parts: SplitResult) -> str:
    """scheme://host[:port] only: a URL's user part or query is no business of an error message."""
    port = _port(parts)
    return f"{parts.scheme}://{parts.hostname}" + (f":{port}" if port is not None else "")


def _secret(value: SecretStr | str | None) -> SecretStr | None:
    if isinstance(value, str):
        value = SecretStr(value.strip())
    return value if value is not None and value.get_secret_value() else None


@dataclass(frozen=True)
class LotSize:
    """A symbol's quantity rules for MARKET orders: LOT_SIZE and MARKET_LOT_SIZE together."""

    step: Decimal
    min_qty: Decimal
    max_qty: Decimal

    @classmethod
    def from_symbol_info(cls, info: dict[str, Any]) -> LotSize:
        filters = [f for f in info["filters"] if f["filterType"] in ("LOT_SIZE", "MARKET_LOT_SIZE")]
        return cls(
            step=max(Decimal(f["stepSize"]) for f in filters),
            min_qty=max(Decimal(f["minQty"]) for f in filters),
            max_qty=min(Decimal(f["maxQty"]) for f in filters),
        )

    def round_down(self, symbol: str, quantity: float) -> Decimal:
        """``quantity`` rounded down to the step (never up: that would trade more than decided)."""
        wanted = Decimal(repr(quantity))
        rounded = (wanted / self.step).to_integral_value(ROUND_DOWN) * self.step
        if not rounded.is_finite() or rounded < self.min_qty or rounded > self.max_qty:
            raise BrokerRejected(
                f"{symbol} quantity {wanted} rounds down to {_plain(rounded)} (stepSize {_plain(self.step)}), "
                f"outside minQty {_plain(self.min_qty)} .. maxQty {_plain(self.max_qty)}; nothing was sent"
            )
        return rounded


def _plain(value: Decimal) -> str:
    """A decimal as Binance accepts it: no exponent, no trailing zeros."""
    return format(value.normalize(), "f")


@dataclass(frozen=True)
class _ExchangeOrder:
    """What the broker reads from an order reply or query."""

    order_id: str
    status: OrderStatus
    fills: tuple[Fill, ...]


class _Ambiguous(Exception):
    """The request may or may not have been processed (5xx, timeout, broken or unreadable reply)."""


class _Refused(Exception):
    """The exchange answered 4xx: the request was not processed."""

    def __init__(self, method: str, status: int, code: int | None, message: str) -> None:
        super().__init__(f"{method} {ORDER_PATH} answered HTTP {status} (code {code}): {message}")
        self.status = status
        self.code = code


class BinanceFuturesBroker(Closing):
    """The Broker for Binance USD-M futures (the testnet, the live API with LIVE_TRADING, or the replay server).

    Fills come from the RESULT reply (avgPrice, executedQty, updateTime). USD-M order replies carry
    no commission, so the fee is ``commission_rate`` x the filled notional (cumQuote). Weight limits
    are per IP: pass the market-data client's ``limiter`` to share one budget in a process.
    """

    name = "binance"

    def __init__(
        self,
        base_url: str,
        api_key: SecretStr | str | None,
        api_secret: SecretStr | str | None,
        *,
        live_trading: bool = False,
        allow_test_endpoint: bool = False,
        commission_rate: float = 0.0005,
        recv_window_ms: int = 5000,
        timeout_s: float = 10.0,
        max_sends: int = 3,
        max_queries: int = 3,
        max_rate_limit_waits: int = 3,
        backoff_base_s: float = 0.5,
        backoff_cap_s: float = 5.0,
        session: requests.Session | None = None,
        limiter: WeightLimiter | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        key, secret = _secret(api_key), _secret(api_secret)
        if key is None or secret is None:
            raise TradingConfigError(MISSING_KEYS)
        self._base_url = order_endpoint(base_url, live_trading=live_trading, allow_test_endpoint=allow_test_endpoint)
        self._live_trading = live_trading
        self._credentials = Credentials(key, secret)
        self.commission_rate = commission_rate
        self.recv_window_ms = recv_window_ms
        self.max_sends = max_sends
        self.max_queries = max_queries
        self._sleep = sleep
        # One HTTP layer for the public calls (exchangeInfo, time) and the signed order calls: one session,
        # weight limiter, clock and retry policy. The policy's retries are the public calls'; an order query
        # is tried max_queries times, and the order POST is never resent by the layer (see submit).
        self._http = BinanceHttp(
            self._base_url,
            limiter=limiter,
            session=session,
            timeout_s=timeout_s,
            policy=RetryPolicy(max_queries, 10, backoff_base_s, backoff_cap_s),
            sleep=sleep,
            rng=rng,
        )
        self._order_policy = self._http.policy.but(
            max_retries=max_queries - 1, max_rate_limit_waits=max_rate_limit_waits
        )
        self._market = BinanceFuturesClient(self._base_url, http=self._http)
        self._lot_sizes: dict[str, LotSize] | None = None

    @property
    def base_url(self) -> str:
        return self._base_url

    def __repr__(self) -> str:
        return f"BinanceFuturesBroker(base_url={self._base_url!r}, live_trading={self._live_trading})"

    def close(self) -> None:
        self._http.close()

    # -- Broker -------------------------------------------------------------

    def submit(self, order: OrderRequest) -> OrderResult:
        """Place ``order`` as a MARKET order once; return the exchange's order, placed now or before."""
        quantity = self.lot_size(order.symbol).round_down(order.symbol, order.quantity)
        params = {
            "symbol": order.symbol,
            "side": order.side.upper(),
            "type": "MARKET",
            "quantity": _plain(quantity),
            **({"reduceOnly": "true"} if order.reduce_only else {}),
            "newClientOrderId": order.client_order_id,
            "newOrderRespType": "RESULT",
        }
        uncertain = False  # a send of this call may have been placed without our hearing of it
        found = self._find(order, may_exist=False)
        if found is not None:
            return self._result(order, found, existing=True)
        for send in range(1, self.max_sends + 1):
            duplicate = False
            try:
                return self._result(order, self._call("POST", params, order), existing=False)
            except _Ambiguous as exc:
                uncertain = True
                log.warning("order %s: send %d outcome unknown (%s); querying it", order.client_order_id, send, exc)
            except _Refused as exc:
                if exc.code != DUPLICATED_CLIENT_ORDER_ID:
                    if uncertain and (found := self._find(order, may_exist=True)) is not None:
                        return self._result(order, found, existing=False)
                    raise self._rejected(order, exc) from None
                duplicate = True
                log.warning("order %s: refused as a duplicate id; querying it", order.client_order_id)
            self._sleep(self._http.backoff_s(send))  # give the exchange a moment to show what it did
            found = self._find(order, may_exist=uncertain or duplicate)
            if found is not None:
                # Found after a duplicate refusal with no uncertain send of ours: it predates this call.
                return self._result(order, found, existing=not uncertain)
        raise OrderOutcomeUnknown(
            f"order {order.client_order_id} ({order.side} {_plain(quantity)} {order.symbol}): {self.max_sends} sends "
            "without a definite answer and the exchange does not show the order; reconcile before sending again"
        )

    def lookup(self, order: OrderRequest) -> OrderResult | None:
        """The exchange's order with this client order id (a query only), or None on -2013 "Order does not exist."."""
        self.lot_size(order.symbol)  # the first call loads the trading rules and syncs the clock the signature needs
        found = self._find(order, may_exist=True)
        return None if found is None else self._result(order, found, existing=True)

    def lot_size(self, symbol: str) -> LotSize:
        """The symbol's quantity rules from exchangeInfo, loaded once (and the clock synced with it)."""
        if self._lot_sizes is None:
            try:
                info = self._market.exchange_info()
                self._market.sync_clock()
            except BinanceError as exc:
                raise BrokerRejected(f"could not load Binance trading rules ({exc}); nothing was sent") from exc
            self._lot_sizes = {s["symbol"]: LotSize.from_symbol_info(s) for s in info.get("symbols", [])}
        if symbol not in self._lot_sizes:
            raise BrokerRejected(f"{symbol} is not listed on Binance USD-M futures; nothing was sent", code=-1121)
        return self._lot_sizes[symbol]

    # -- internals ----------------------------------------------------------

    def _find(self, order: OrderRequest, *, may_exist: bool) -> _ExchangeOrder | None:
        """The exchange's order with this client id, or None on -2013; OrderOutcomeUnknown when it cannot tell.

        ``may_exist``: an order may have been placed, so a refused query leaves the outcome unknown
        instead of meaning "nothing was placed".
        """
        params = {"symbol": order.symbol, "origClientOrderId": order.client_order_id}
        try:
            return self._call("GET", params, order)  # the layer retries a query (idempotent) with jitter
        except _Refused as exc:
            if exc.code == NO_SUCH_ORDER:
                return None
            if not may_exist:
                raise self._rejected(order, exc) from None
            raise OrderOutcomeUnknown(
                f"order {order.client_order_id}: it may have been placed, and querying it failed: {exc}"
            ) from None
        except _Ambiguous as exc:
            raise OrderOutcomeUnknown(
                f"order {order.client_order_id} on {order.symbol}: {self.max_queries} queries failed (last: {exc}); "
                "it may or may not exist, reconcile before sending again"
            ) from None

    def _call(self, method: Literal["GET", "POST"], params: dict[str, str], order: OrderRequest) -> _ExchangeOrder:
        """One SIGNED request to /fapi/v1/order through the shared layer (429 waits and the -1021 re-sync
        included; a GET's transient failures retried, a POST's never).

        Returns a readable order; raises _Refused (a 3xx, never followed; 4xx, incl. 418 and 429 beyond the
        waits) or _Ambiguous (the request may or may not have been processed).
        """
        try:
            return self._http.signed_request(
                method,
                ORDER_PATH,
                params,
                self._credentials,
                weight=0 if method == "POST" else 1,  # placing costs ORDERS, not IP weight
                decode=lambda payload: self._decode(order, payload),
                recv_window_ms=self.recv_window_ms,
                policy=self._order_policy,
            )
        except (BinanceAPIError, IPBannedError, RateLimitedError) as exc:
            raise _Refused(method, exc.status, exc.code, exc.message) from None
        except BinanceUnavailableError as exc:
            raise _Ambiguous(exc.problem) from None

    def _decode(self, order: OrderRequest, payload: Any) -> _ExchangeOrder:
        try:
            return self._read(order, payload)
        except (KeyError, TypeError, InvalidOperation) as exc:
            raise MalformedResponse(type(exc).__name__) from None

    def _read(self, order: OrderRequest, payload: dict[str, Any]) -> _ExchangeOrder:
        """The order in a RESULT reply or a query answer; one aggregate fill, as the reply has no trades."""
        if payload["clientOrderId"] != order.client_order_id or payload["symbol"] != order.symbol:
            raise ValueError("the reply is about another order")
        executed = Decimal(payload["executedQty"])
        fills: tuple[Fill, ...] = ()
        if executed > 0:
            price = Decimal(payload["avgPrice"])
            notional = Decimal(payload.get("cumQuote") or price * executed)
            when = dt.datetime.fromtimestamp(int(payload["updateTime"]) / 1000, tz=dt.UTC)
            fee = float(notional) * self.commission_rate
            fills = (Fill(price=float(price), quantity=float(executed), fee=fee, time=when),)
        return _ExchangeOrder(str(payload["orderId"]), _STATUSES[payload["status"]], fills)

    def _result(self, order: OrderRequest, placed: _ExchangeOrder, *, existing: bool) -> OrderResult:
        return OrderResult(
            client_order_id=order.client_order_id,
            exchange_order_id=placed.order_id,
            broker=self.name,
            status=placed.status,
            fills=placed.fills,
            existing=existing,
        )

    @staticmethod
    def _rejected(order: OrderRequest, exc: _Refused) -> BrokerRejected:
        hint = _HINTS.get(exc.code) if exc.code is not None else None
        ban = "; the IP is banned, stopping without retrying" if exc.status == 418 else ""
        return BrokerRejected(
            f"Binance refused order {order.client_order_id} ({order.side} {order.symbol}): {exc}"
            f"{f' ({hint})' if hint else ''}{ban}; nothing was placed",
            code=exc.code,
        )
