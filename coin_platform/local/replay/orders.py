"""Signed order endpoints of the replay account: Binance's SIGNED checks and MARKET orders filled at once.

``POST /fapi/v1/order`` and ``GET /fapi/v1/order`` are SIGNED as on Binance (API key
header, HMAC-SHA256 over the exact query string + body, timestamp within recvWindow).
MARKET orders fill at once at the close of the symbol's last closed 1m candle, the price
the klines endpoint serves, and are kept by clientOrderId, so a resend with the same id
is refused as a duplicate. The default key pair is Binance's published documentation example.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import threading
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from urllib.parse import parse_qsl

from coin_platform.local.replay import synthetic
from coin_platform.local.replay.protocol import Reply, error_reply, mandatory_reply
from coin_platform.local.replay.weights import WINDOW_MS

# The key pair of Binance's published HMAC signing example (USD-M general-info page, "SIGNED Endpoint
# Examples for POST /fapi/v1/order"): documentation values, not anyone's credentials.
DOCS_EXAMPLE_API_KEY = "dbefbc809e3e83c283a984c3a1459732ea7db1360ca80c5c2c8867408d28cc83"
DOCS_EXAMPLE_API_SECRET = "2b5eb11e18796d12d88f13dc27dbbd02c2cc51ff7059765ed9821957d82bb4d9"
DEFAULT_RECV_WINDOW_MS = 5000
_CLIENT_ORDER_ID = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")
_MAX_MARKET_QUANTITY = "100000"  # MARKET_LOT_SIZE maxQty in exchangeInfo
ORDER_TYPES = [
    "LIMIT",
    "MARKET",
    "STOP",
    "STOP_MARKET",
    "TAKE_PROFIT",
    "TAKE_PROFIT_MARKET",
    "TRAILING_STOP_MARKET",
]


class OrderBook:
    """The replay account's orders by clientOrderId, as GET /fapi/v1/order answers them."""

    def __init__(
        self,
        symbols: tuple[str, ...],
        now_ms: Callable[[], int],
        api_key: str = DOCS_EXAMPLE_API_KEY,
        api_secret: str = DOCS_EXAMPLE_API_SECRET,
        lock: threading.RLock | None = None,
    ) -> None:
        self.symbols = symbols
        self.now_ms = now_ms
        self._lock = lock or threading.RLock()
        self._api_key = api_key
        self._api_secret = api_secret
        self._orders: dict[str, dict[str, object]] = {}  # by clientOrderId, as GET /fapi/v1/order answers
        self._next_order_id = 1

    def placed(self) -> int:
        with self._lock:
            return len(self._orders)

    def reset(self) -> None:
        with self._lock:
            self._orders.clear()
            self._next_order_id = 1

    def authenticate(self, api_key: str | None, query: str, body: str) -> tuple[dict[str, str], Reply | None]:
        """Binance's SIGNED checks: the API key, the signature over query + body as sent, then the timestamp."""
        if api_key is None or not hmac.compare_digest(api_key.encode(), self._api_key.encode()):
            return {}, error_reply(-2015, "Invalid API-key, IP, or permissions for action.", status=401)
        total, sent, signature = (query + body).rpartition("&signature=")
        if not sent or not signature:
            return {}, mandatory_reply("signature")
        expected = hmac.new(self._api_secret.encode(), total.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature.lower()):
            return {}, error_reply(-1022, "Signature for this request is not valid.")
        params = dict(parse_qsl(query, keep_blank_values=True))
        params.update(parse_qsl(body, keep_blank_values=True))
        params.pop("signature", None)
        for name in ("timestamp", "recvWindow"):
            text = params.get(name)
            if text is not None and not (text.isascii() and text.isdigit() and len(text) <= 20):
                return {}, error_reply(
                    -1100, f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'."
                )
        if "timestamp" not in params:
            return {}, mandatory_reply("timestamp")
        now_ms, timestamp = self.now_ms(), int(params["timestamp"])
        if timestamp >= now_ms + 1000:
            return {}, error_reply(-1021, "Timestamp for this request was 1000ms ahead of the server's time.")
        if now_ms - timestamp > int(params.get("recvWindow", DEFAULT_RECV_WINDOW_MS)):
            return {}, error_reply(-1021, "Timestamp for this request is outside of the recvWindow.")
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
                return mandatory_reply(name)
        symbol, side, order_type = params["symbol"], params["side"], params["type"]
        if symbol not in self.symbols:
            return error_reply(-1121, "Invalid symbol.")
        if side not in ("BUY", "SELL"):
            return error_reply(-1117, "Invalid side.")
        if order_type not in ORDER_TYPES:
            return error_reply(-1116, "Invalid orderType.")
        if order_type != "MARKET":
            return error_reply(-1014, "Unsupported order combination.")
        spec = synthetic.instrument(symbol)
        try:
            quantity = Decimal(params["quantity"])
        except InvalidOperation:
            quantity = Decimal("NaN")
        if not quantity.is_finite():
            return error_reply(-1100, "Illegal characters found in parameter 'quantity'.")
        step = Decimal(spec.step_size)
        if quantity <= 0:
            return error_reply(-4003, "Quantity less than zero.")
        if quantity % step:  # minQty is one step, so this also refuses anything below it
            return error_reply(-1111, "Precision is over the maximum defined for this asset.")
        if quantity > Decimal(_MAX_MARKET_QUANTITY):
            return error_reply(-4005, "Quantity greater than max quantity.")
        reduce_only = params.get("reduceOnly", "false").lower()
        if reduce_only not in ("true", "false"):
            return error_reply(-1130, "Data sent for parameter 'reduceOnly' is not valid.")
        response_type = params.get("newOrderRespType", "ACK")
        if response_type not in ("ACK", "RESULT"):
            return error_reply(-1136, "Invalid newOrderRespType.")
        client_order_id = params.get("newClientOrderId")
        if client_order_id is not None and not _CLIENT_ORDER_ID.match(client_order_id):
            return error_reply(-4015, "Client order id is not valid.")
        now_ms = self.now_ms()
        close = int(synthetic.kline_bars(symbol, "1m", end_ms=now_ms - WINDOW_MS, limit=1, now_ms=now_ms).close[-1])
        lots = int(quantity / step)
        with self._lock:
            order_id = self._next_order_id
            client_order_id = client_order_id or f"replay{order_id}"
            if client_order_id in self._orders:
                return error_reply(-4116, "ClientOrderId is duplicated.")
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
            return mandatory_reply("symbol")
        if params["symbol"] not in self.symbols:
            return error_reply(-1121, "Invalid symbol.")
        client_order_id, order_id = params.get("origClientOrderId"), params.get("orderId")
        if not client_order_id and not order_id:
            return error_reply(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
        with self._lock:
            if order_id:
                order = next((o for o in self._orders.values() if str(o["orderId"]) == order_id), None)
            else:
                order = self._orders.get(client_order_id)
            order = dict(order) if order is not None else None
        if order is None or order["symbol"] != params["symbol"]:
            return error_reply(-2013, "Order does not exist.")
        return Reply(200, order)
