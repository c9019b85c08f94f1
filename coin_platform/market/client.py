"""Binance USD-M futures REST client for market data: klines, exchangeInfo, time.

Retries what is worth retrying and nothing else: 429 waits (Retry-After or the
next weight window) and slows the limiter down; 5xx, timeouts, truncated or
malformed bodies get bounded retries with full jitter; 418 (IP ban) and other
4xx stop at once with the exchange's own code and message.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import polars as pl
import requests

from coin_platform.core.intervals import interval_ms, normalize_interval
from coin_platform.market.klines import (
    MalformedKlinesError,
    empty_raw_klines,
    kline_request_weight,
    parse_kline_rows,
)
from coin_platform.binance.weights import WeightLimiter

MAX_KLINES_PER_REQUEST = 1500
USED_WEIGHT_HEADER = "X-MBX-USED-WEIGHT-1M"
INVALID_SYMBOL_CODE = -1121
T = TypeVar("T")


class BinanceError(RuntimeError):
    """Base class of every error the client raises."""


class BinanceAPIError(BinanceError):
    """A request the exchange refused (4xx): retrying the same request cannot help."""

    def __init__(self, status: int, code: int | None, message: str, path: str) -> None:
        super().__init__(f"Binance {path} answered HTTP {status} (code {code}): {message}")
        self.status = status
        self.code = code
        self.message = message


class InvalidSymbolError(BinanceAPIError):
    """The symbol is not listed on USD-M futures."""


class IPBannedError(BinanceError):
    """HTTP 418: the IP is banned for ignoring 429s; retrying would extend the ban."""

    def __init__(self, retry_after_s: float | None, message: str) -> None:
        wait = f" for {retry_after_s:.0f} s" if retry_after_s is not None else ""
        super().__init__(
            f"Binance banned this IP{wait} (HTTP 418: {message}); "
            "stopping instead of retrying — wait out the ban before the next run"
        )
        self.retry_after_s = retry_after_s


class BinanceUnavailableError(BinanceError):
    """Transient failures (5xx, timeouts, broken bodies) outlasted the retry budget."""


def _retry_after(headers: Any) -> float | None:
    value = headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class BinanceFuturesClient:
    """Public market-data endpoints of one Binance USD-M base URL (Binance or the replay server)."""

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
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.limiter = limiter or WeightLimiter()
        self.session = session or requests.Session()
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.max_rate_limit_waits = max_rate_limit_waits
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self._sleep = sleep
        self._rng = rng or random.Random()
        self.stats = {"requests": 0, "kline_requests": 0, "retries": 0, "rate_limited": 0, "weight": 0}
        self._exchange_info: dict[str, Any] | None = None

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> BinanceFuturesClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _get(
        self,
        path: str,
        params: dict[str, Any],
        weight: int,
        decode: Callable[[Any], T],
    ) -> T:
        """GET with the limiter, the retry policy and `decode` validating the JSON body."""
        transient_failures = 0
        rate_limit_waits = 0
        while True:
            window = self.limiter.acquire(weight)
            self.stats["requests"] += 1
            self.stats["weight"] += weight
            problem: str
            try:
                response = self.session.get(
                    f"{self.base_url}{path}", params=params, timeout=self.timeout_s
                )
                body = response.content
            except (
                requests.ConnectionError,
                requests.Timeout,
                requests.exceptions.ChunkedEncodingError,
                requests.exceptions.ContentDecodingError,
            ) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                self.limiter.observe(response.headers.get(USED_WEIGHT_HEADER), window)
                status = response.status_code
                if status == 418:
                    raise IPBannedError(_retry_after(response.headers), self._message(body))
                if status == 429:
                    rate_limit_waits += 1
                    self.stats["rate_limited"] += 1
                    if rate_limit_waits > self.max_rate_limit_waits:
                        raise BinanceUnavailableError(
                            f"{path}: still rate limited (429) after {rate_limit_waits - 1} waits"
                        )
                    self._sleep(self.limiter.back_off(_retry_after(response.headers)))
                    continue
                if 400 <= status < 500:
                    code, message = self._error_fields(body)
                    error = InvalidSymbolError if code == INVALID_SYMBOL_CODE else BinanceAPIError
                    raise error(status, code, message, path)
                if status >= 500:
                    problem = f"HTTP {status}: {self._message(body)}"
                else:
                    try:
                        return decode(response.json())
                    except (ValueError, MalformedKlinesError) as exc:
                        problem = f"unusable response body: {exc}"
            transient_failures += 1
            if transient_failures > self.max_retries:
                raise BinanceUnavailableError(
                    f"{path} failed {transient_failures} times; last problem: {problem}"
                )
            self.stats["retries"] += 1
            ceiling = min(self.backoff_cap_s, self.backoff_base_s * 2 ** (transient_failures - 1))
            self._sleep(self._rng.uniform(0, ceiling))

    @staticmethod
    def _error_fields(body: bytes) -> tuple[int | None, str]:
        try:
            payload = requests.models.complexjson.loads(body)
            return payload.get("code"), str(payload.get("msg", ""))
        except (ValueError, AttributeError):
            return None, body[:200].decode("utf-8", "replace")

    @classmethod
    def _message(cls, body: bytes) -> str:
        return cls._error_fields(body)[1]

    def server_time_ms(self) -> int:
        return self._get("/fapi/v1/time", {}, 1, lambda payload: int(payload["serverTime"]))

    def sync_clock(self) -> int:
        """Measure the exchange clock's offset from ours (ms) so windows and 'closed' agree."""
        before = self.limiter.local_ms()
        server_ms = self.server_time_ms()
        after = self.limiter.local_ms()
        offset = server_ms - (before + after) // 2
        self.limiter.server_offset_ms = offset
        return offset

    def exchange_info(self) -> dict[str, Any]:
        """exchangeInfo; also adopts its published REQUEST_WEIGHT per-minute limit."""
        info = self._get("/fapi/v1/exchangeInfo", {}, 1, dict)
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
        return self._get("/fapi/v1/klines", params, kline_request_weight(limit), parse_kline_rows)

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
