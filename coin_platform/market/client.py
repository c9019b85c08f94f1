"""Binance USD-M futures REST client for market data: klines, funding rates, exchangeInfo, time.

The HTTP itself (weight accounting, 429/418, retries with jitter, the clock) is
`coin_platform.binance.http`, shared with the order broker; this module knows the
market-data endpoints: pagination, closed candles, funding times that have passed, the listed symbols.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections.abc import Callable, Iterable
from typing import Any

import polars as pl
import requests

from coin_platform.binance.errors import INVALID_SYMBOL_CODE, BinanceAPIError, InvalidSymbolError
from coin_platform.binance.http import BinanceHttp, Closing, RetryPolicy
from coin_platform.binance.weights import WeightLimiter
from coin_platform.core.intervals import interval_ms, normalize_interval
from coin_platform.market.funding import MalformedFundingError, empty_funding, parse_funding_rates
from coin_platform.market.klines import empty_raw_klines, kline_request_weight, parse_kline_rows

MAX_KLINES_PER_REQUEST = 1500
FUNDING_RATE_PATH = "/fapi/v1/fundingRate"
MAX_FUNDING_RATES_PER_REQUEST = 1000
# GET /fapi/v1/fundingRate has no REQUEST_WEIGHT of its own: it shares a limit of 500 requests per
# 5 minutes per IP with GET /fapi/v1/fundingInfo (Binance's USD-M docs, "Get Funding Rate History").
FUNDING_RATE_WEIGHT = 0
FUNDING_REQUESTS_PER_WINDOW = 500
FUNDING_WINDOW_MS = 5 * 60_000


class BinanceFuturesClient(Closing):
    """Public market-data endpoints of one Binance USD-M base URL (Binance or the replay server).

    Pass `http` to share one layer (session, limiter, clock) with the broker; otherwise the
    options build one. `funding_limit` is fundingRate's own limit per 5 minutes (Binance does not
    publish it in exchangeInfo).
    """

    def __init__(
        self,
        base_url: str,
        *,
        limiter: WeightLimiter | None = None,
        session: requests.Session | None = None,
        timeout_s: float = 10.0,
        max_retries: int = 5,
        max_rate_limit_waits: int = 10,
        backoff_base_s: float = 0.5,
        backoff_cap_s: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        http: BinanceHttp | None = None,
        funding_limit: int = FUNDING_REQUESTS_PER_WINDOW,
    ) -> None:
        self.http = http or BinanceHttp(
            base_url,
            limiter=limiter,
            session=session,
            timeout_s=timeout_s,
            policy=RetryPolicy(max_retries, max_rate_limit_waits, backoff_base_s, backoff_cap_s),
            sleep=sleep,
            rng=rng,
        )
        self.stats = self.http.stats
        self.stats.setdefault("kline_requests", 0)
        self.stats.setdefault("funding_requests", 0)
        self.funding_limiter = self.limiter.sibling(funding_limit, FUNDING_WINDOW_MS)
        self._exchange_info: dict[str, Any] | None = None

    @property
    def base_url(self) -> str:
        return self.http.base_url

    @property
    def limiter(self) -> WeightLimiter:
        return self.http.limiter

    def close(self) -> None:
        self.http.close()

    def server_time_ms(self) -> int:
        return self.http.server_time_ms()

    def sync_clock(self) -> int:
        """Measure the exchange clock's offset from ours (ms) so windows and 'closed' agree."""
        return self.http.sync_clock()

    def exchange_info(self) -> dict[str, Any]:
        """exchangeInfo; also adopts its published REQUEST_WEIGHT per-minute limit."""
        info = self.http.get("/fapi/v1/exchangeInfo", {}, 1, dict)
        self.limiter.adopt_rate_limits(info.get("rateLimits", []))
        self._exchange_info = info
        return info

    def trading_symbols(self) -> set[str]:
        info = self._exchange_info or self.exchange_info()
        return {s["symbol"] for s in info.get("symbols", []) if s.get("status") == "TRADING"}

    def validate_symbols(self, symbols: Iterable[str]) -> None:
        """Fail before fetching anything when a configured symbol is not listed."""
        listed = self.trading_symbols()
        unknown = sorted(set(symbols) - listed)
        if unknown:
            raise InvalidSymbolError(
                400, INVALID_SYMBOL_CODE, f"not trading on USD-M futures: {', '.join(unknown)}",
                "/fapi/v1/exchangeInfo",
            )

    def klines_page(
        self, symbol: str, interval: str, start_ms: int, end_ms: int, limit: int
    ) -> pl.DataFrame:
        """One GET /fapi/v1/klines call: up to `limit` candles with open time in [start, end]."""
        params = {
            "symbol": symbol,
            "interval": normalize_interval(interval),
            "startTime": start_ms,
            "endTime": end_ms,
            "limit": limit,
        }
        self.stats["kline_requests"] += 1
        return self.http.get("/fapi/v1/klines", params, kline_request_weight(limit), parse_kline_rows)

    def last_price(self, symbol: str) -> tuple[float, dt.datetime]:
        """The last traded price and the exchange time it was read at: the close of the
        still-forming 1m candle (weight 1)."""
        now_ms = self.limiter.now_ms()
        step = interval_ms("1m")
        minute = now_ms - now_ms % step
        page = self.klines_page(symbol, "1m", minute - step, minute + step - 1, 2)
        if page.is_empty():
            raise BinanceAPIError(200, None, f"no {symbol} 1m candle around {minute}", "/fapi/v1/klines")
        return float(page["close"][-1]), dt.datetime.fromtimestamp(now_ms / 1000, dt.UTC)

    def fetch_klines(
        self, symbol: str, interval: str, start: dt.datetime, end: dt.datetime
    ) -> pl.DataFrame:
        """Closed candles with open time in [start, end), paginated, oldest first.

        Stops at the last closed candle by exchange time, so the still-forming
        candle is never requested or returned.
        """
        step = interval_ms(interval)
        now_ms = self.limiter.now_ms()
        last_closed_open = (now_ms // step) * step - step
        cursor = -(-int(start.timestamp() * 1000) // step) * step
        last_open = min(int(end.timestamp() * 1000) - 1, last_closed_open)
        pages: list[pl.DataFrame] = []
        while cursor <= last_open:
            wanted = (last_open - cursor) // step + 1
            limit = min(MAX_KLINES_PER_REQUEST, wanted)
            page = self.klines_page(symbol, interval, cursor, last_open, limit)
            if page.is_empty():
                break
            pages.append(page)
            cursor = int(page["open_time"].dt.epoch("ms").max()) + step
            if page.height < limit:
                break
        if not pages:
            return empty_raw_klines()
        frame = pl.concat(pages)
        return frame.filter(pl.col("close_time").dt.epoch("ms") < now_ms)

    def funding_rates_page(self, symbol: str, start_ms: int, end_ms: int, limit: int) -> pl.DataFrame:
        """One GET /fapi/v1/fundingRate call: up to `limit` funding rates of `symbol` with time in [start, end].

        An answer that is not the REST shape, names another symbol or holds times outside the window
        or out of order is unusable (MalformedFundingError, retried like a broken body).
        """
        params = {"symbol": symbol, "startTime": start_ms, "endTime": end_ms, "limit": limit}

        def decode(items: object) -> pl.DataFrame:
            page = parse_funding_rates(items)
            epoch_ms = page["funding_time"].dt.epoch("ms")
            wrong = (
                (page["symbol"] != symbol)
                | (epoch_ms < start_ms)
                | (epoch_ms > end_ms)
                | (epoch_ms.diff() <= 0).fill_null(False)
            )
            if wrong.any():
                index = int(wrong.arg_true()[0])
                raise MalformedFundingError(
                    f"funding item {index} ({page['symbol'][index]} at {epoch_ms[index]}) is not a {symbol} "
                    f"funding time after the previous one within the {start_ms}..{end_ms} asked for"
                )
            if page.height > limit:
                raise MalformedFundingError(f"{page.height} funding items where at most {limit} were asked for")
            return page

        self.stats["funding_requests"] += 1
        return self.http.get(FUNDING_RATE_PATH, params, FUNDING_RATE_WEIGHT, decode, quota=self.funding_limiter)

    def fetch_funding_rates(self, symbol: str, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
        """The funding rates of `symbol` with funding time in [start, end) that have passed by exchange
        time, paginated, oldest first (columns FUNDING_SCHEMA)."""
        now_ms = self.limiter.now_ms()
        cursor = int(start.timestamp() * 1000)
        last = min(int(end.timestamp() * 1000) - 1, now_ms)
        pages: list[pl.DataFrame] = []
        while cursor <= last:
            page = self.funding_rates_page(symbol, cursor, last, MAX_FUNDING_RATES_PER_REQUEST)
            if page.is_empty():
                break
            pages.append(page)
            if page.height < MAX_FUNDING_RATES_PER_REQUEST:
                break
            cursor = int(page["funding_time"].dt.epoch("ms").max()) + 1  # type: ignore[arg-type]
        return pl.concat(pages) if pages else empty_funding()
