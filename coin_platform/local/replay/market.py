"""The market data endpoints: exchangeInfo, klines and funding rates over the synthetic market, with Binance's
errors."""

from __future__ import annotations

from coin_platform.core.intervals import INTERVAL_MS
from coin_platform.local.replay import synthetic
from coin_platform.local.replay.orders import ORDER_TYPES
from coin_platform.local.replay.protocol import (
    DEFAULT_FUNDING_LIMIT,
    DEFAULT_KLINES_LIMIT,
    Reply,
    error_reply,
    mandatory_reply,
)


def exchange_info(symbols: tuple[str, ...], weight_limit: int, now_ms: int) -> dict[str, object]:
    return {
        "timezone": "UTC",
        "serverTime": now_ms,
        "futuresType": "U_MARGINED",
        "rateLimits": [
            {
                "rateLimitType": "REQUEST_WEIGHT",
                "interval": "MINUTE",
                "intervalNum": 1,
                "limit": weight_limit,
            },
            {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300},
        ],
        "exchangeFilters": [],
        "assets": [
            {"asset": asset, "marginAvailable": True, "autoAssetExchange": "-100"}
            for asset in synthetic.QUOTE_ASSETS
        ],
        "symbols": [symbol_info(synthetic.instrument(symbol)) for symbol in symbols],
    }


def _numbers(params: dict[str, str]) -> dict[str, int | None] | Reply:
    """startTime, endTime and limit as integers (None when absent), or Binance's -1100 for one that is not."""
    numbers: dict[str, int | None] = {}
    for name in ("startTime", "endTime", "limit"):
        text = params.get(name)
        if text is not None and not (text.isascii() and text.isdigit() and len(text) <= 20):
            return error_reply(
                -1100,
                f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'.",
            )
        numbers[name] = int(text) if text is not None else None
    return numbers


def _window(params: dict[str, str], default_limit: int, max_limit: int) -> tuple[int | None, int | None, int] | Reply:
    """(startTime, endTime, limit) of a time-window request, or the error Binance answers it with."""
    numbers = _numbers(params)
    if isinstance(numbers, Reply):
        return numbers
    limit = numbers["limit"] if numbers["limit"] is not None else default_limit
    if not 1 <= limit <= max_limit:
        return error_reply(-1130, "Data sent for parameter 'limit' is not valid.")
    start, end = numbers["startTime"], numbers["endTime"]
    if start is not None and end is not None and start > end:
        return error_reply(-1023, "Start time is greater than end time.")
    return start, end, limit


def klines(symbols: tuple[str, ...], params: dict[str, str], now_ms: int) -> Reply:
    """GET /fapi/v1/klines with Binance's parameter rules and error codes."""
    for name in ("symbol", "interval"):
        if not params.get(name):
            return mandatory_reply(name)
    if params["symbol"] not in symbols:
        return error_reply(-1121, "Invalid symbol.")
    if params["interval"] not in INTERVAL_MS:
        return error_reply(-1120, "Invalid interval.")
    window = _window(params, DEFAULT_KLINES_LIMIT, synthetic.MAX_LIMIT)
    if isinstance(window, Reply):
        return window
    start, end, limit = window
    rows = synthetic.klines(
        params["symbol"],
        params["interval"],
        start_ms=start,
        end_ms=end,
        limit=limit,
        now_ms=now_ms,
    )
    return Reply(200, rows)


def funding_rates(symbols: tuple[str, ...], params: dict[str, str], now_ms: int) -> Reply:
    """GET /fapi/v1/fundingRate: one symbol's funding rates, or without `symbol` every listed symbol's,
    oldest first (by time, then symbol), at most `limit` (default 100, max 1000)."""
    symbol = params.get("symbol")
    if symbol and symbol not in symbols:
        return error_reply(-1121, "Invalid symbol.")
    window = _window(params, DEFAULT_FUNDING_LIMIT, synthetic.MAX_FUNDING_LIMIT)
    if isinstance(window, Reply):
        return window
    start, end, limit = window
    items = [
        item
        for listed in ([symbol] if symbol else symbols)
        for item in synthetic.funding_rates(listed, start_ms=start, end_ms=end, limit=limit, now_ms=now_ms)
    ]
    if not symbol:
        items.sort(key=lambda item: (item["fundingTime"], item["symbol"]))
        items = items[:limit] if start is not None else items[-limit:]
    return Reply(200, items)


def symbol_info(spec: synthetic.Instrument) -> dict[str, object]:
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
        "orderTypes": ORDER_TYPES,
        "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
    }

