"""The weight budget: fixed one-minute windows aligned to the wall-clock minute, as Binance counts them,
and fundingRate's own limit of requests per 5-minute window.

Going over a limit gets 429 with Retry-After; more than STRIKES_BEFORE_BAN further
requests rejected in the same window get a 418 ban for ``ban_seconds``, during which
every request gets 418.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass

from coin_platform.local.replay.protocol import DEFAULT_KLINES_LIMIT, ORDER_PATH, Reply
from coin_platform.market.client import (
    FUNDING_RATE_PATH,
    FUNDING_RATE_WEIGHT,
    FUNDING_REQUESTS_PER_WINDOW,
    FUNDING_WINDOW_MS,
)
from coin_platform.market.klines import kline_request_weight

WINDOW_MS = 60_000
STRIKES_BEFORE_BAN = 3  # rejected requests tolerated after the first 429 of a window


@dataclass
class _Window:
    """Accounting for one window of a limit (a wall-clock minute for the weight)."""

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


class _Limit:
    """One per-IP limit counted in fixed windows aligned to the wall clock: what each window used and refused."""

    def __init__(self, limit: int, window_ms: int, per: str) -> None:
        if limit < 1:
            raise ValueError(f"a limit must be positive, got {limit} {per}")
        self.limit = limit
        self.window_ms = window_ms
        self.per = per  # how the 429 message names the limit
        self.windows: dict[int, _Window] = {}

    def start_of(self, now_ms: int) -> int:
        return now_ms - now_ms % self.window_ms

    def window(self, now_ms: int) -> _Window:
        """The window of ``now_ms``, opened on its first request."""
        start = self.start_of(now_ms)
        return self.windows.setdefault(start, _Window(start))

    def stats(self) -> list[dict[str, int]]:
        return [self.windows[start].as_dict() for start in sorted(self.windows)]


class WeightBudget:
    """REQUEST_WEIGHT accounting per window, fundingRate's own request limit, and the ban; ``now_ms`` is the
    server's clock.

    fundingRate costs no weight (as on Binance) but one request of its limit (``funding_limit`` per
    5 minutes); either limit's 429s and ban work alike, and a ban stops every request.
    """

    def __init__(
        self,
        weight_limit: int,
        ban_seconds: float,
        now_ms: Callable[[], int],
        lock: threading.RLock | None = None,
        *,
        funding_limit: int = FUNDING_REQUESTS_PER_WINDOW,
    ) -> None:
        if weight_limit < 1:
            raise ValueError(f"weight_limit must be positive, got {weight_limit}")
        if funding_limit < 1:
            raise ValueError(f"funding_limit must be positive, got {funding_limit}")
        if ban_seconds <= 0:
            raise ValueError(f"ban_seconds must be positive, got {ban_seconds}")
        self.ban_seconds = ban_seconds
        self.now_ms = now_ms
        self._lock = lock or threading.RLock()
        self._weight = _Limit(weight_limit, WINDOW_MS, "requests per minute")
        funding_per = f"requests per {FUNDING_WINDOW_MS // WINDOW_MS} minutes for {FUNDING_RATE_PATH}"
        self._funding = _Limit(funding_limit, FUNDING_WINDOW_MS, funding_per)
        self._banned_until_ms: int | None = None

    @property
    def weight_limit(self) -> int:
        return self._weight.limit

    @property
    def funding_limit(self) -> int:
        return self._funding.limit

    def used_weight(self) -> int:
        with self._lock:
            window = self._weight.windows.get(self._weight.start_of(self.now_ms()))
            return window.weight if window else 0

    def admit(self, weight: int, client_ip: str, *, funding: bool = False) -> Reply | None:
        """Charge ``weight`` to the current window (and, for ``funding``, one request to fundingRate's limit),
        or the 429/418 reply that refuses it."""
        now_ms = self.now_ms()
        with self._lock:
            window = self._weight.window(now_ms)
            window.requests += 1
            if self._banned_until_ms is not None and now_ms < self._banned_until_ms:
                window.rejected_418 += 1
                return ban_reply(client_ip, self._banned_until_ms, now_ms)
            refusal = self._charge(self._weight, window, weight, client_ip, now_ms)
            if refusal is not None or not funding:
                return refusal
            funding_window = self._funding.window(now_ms)
            funding_window.requests += 1
            return self._charge(self._funding, funding_window, 1, client_ip, now_ms)

    def _charge(self, limit: _Limit, window: _Window, cost: int, client_ip: str, now_ms: int) -> Reply | None:
        if window.weight + cost <= limit.limit:
            window.weight += cost
            return None
        if window.strikes > STRIKES_BEFORE_BAN:
            window.strikes = 0
            window.rejected_418 += 1
            self._banned_until_ms = now_ms + int(self.ban_seconds * 1000)
            return ban_reply(client_ip, self._banned_until_ms, now_ms)
        window.strikes += 1
        window.rejected_429 += 1
        retry_after = max(1, math.ceil((window.start_ms + limit.window_ms - now_ms) / 1000))
        return _too_many_requests(limit, client_ip, retry_after)

    def too_many_requests(self, client_ip: str, retry_after: int) -> Reply:
        """The 429 fault's reply: the weight limit's message, though nothing is counted."""
        return _too_many_requests(self._weight, client_ip, retry_after)

    def ban(self, client_ip: str) -> Reply:
        """The 418 fault's reply: banned for ``ban_seconds`` from now, though no ban is recorded."""
        now_ms = self.now_ms()
        return ban_reply(client_ip, now_ms + int(self.ban_seconds * 1000), now_ms)

    def stats(self) -> dict[str, object]:
        with self._lock:
            return {
                "weight_limit": self.weight_limit,
                "funding_limit": self.funding_limit,
                "ban_seconds": self.ban_seconds,
                "banned_until_ms": self._banned_until_ms,
                "windows": self._weight.stats(),
                # fundingRate's windows; their "weight" is the requests admitted, one each.
                "funding_windows": self._funding.stats(),
            }

    def reset(self) -> None:
        """Forget windows and bans."""
        with self._lock:
            self._weight.windows.clear()
            self._funding.windows.clear()
            self._banned_until_ms = None


def _too_many_requests(limit: _Limit, client_ip: str, retry_after: int) -> Reply:
    message = (
        f"Too many requests; current limit of IP({client_ip}) is {limit.limit} {limit.per}. "
        "Please use WebSocket Streams for live updates to avoid polling the API."
    )
    return Reply(429, {"code": -1003, "msg": message}, {"Retry-After": str(retry_after)})


def ban_reply(client_ip: str, banned_until_ms: int, now_ms: int) -> Reply:
    message = (
        f"Way too many requests; IP({client_ip}) banned until {banned_until_ms}. "
        "Please use WebSocket Streams for live updates to avoid bans."
    )
    retry_after = max(1, math.ceil((banned_until_ms - now_ms) / 1000))
    return Reply(418, {"code": -1003, "msg": message}, {"Retry-After": str(retry_after)})


def _limit_weight(params: dict[str, str]) -> int:
    text = params.get("limit", "")
    limit = int(text) if text.isascii() and text.isdigit() else DEFAULT_KLINES_LIMIT
    return kline_request_weight(limit)


# The request weight of each Binance path the replay serves.
REQUEST_WEIGHTS: dict[str, Callable[[dict[str, str]], int]] = {
    "/fapi/v1/ping": lambda params: 1,
    "/fapi/v1/time": lambda params: 1,
    "/fapi/v1/exchangeInfo": lambda params: 1,
    "/fapi/v1/klines": _limit_weight,
    FUNDING_RATE_PATH: lambda params: FUNDING_RATE_WEIGHT,  # and one request of its own limit (WeightBudget)
    ORDER_PATH: lambda params: 1,  # GET, the order query; POST (placing) is routed on its own
}

