"""The weight budget: fixed one-minute windows aligned to the wall-clock minute, as Binance counts them.

Going over the budget gets 429 with Retry-After; more than STRIKES_BEFORE_BAN further
requests rejected in the same window get a 418 ban for ``ban_seconds``, during which
every request gets 418.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass

from coin_platform.local.replay.protocol import DEFAULT_KLINES_LIMIT, ORDER_PATH, Reply
from coin_platform.market.klines import kline_request_weight

WINDOW_MS = 60_000
STRIKES_BEFORE_BAN = 3  # rejected requests tolerated after the first 429 of a window


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


class WeightBudget:
    """REQUEST_WEIGHT accounting per window and the ban; ``now_ms`` is the server's clock."""

    def __init__(
        self,
        weight_limit: int,
        ban_seconds: float,
        now_ms: Callable[[], int],
        lock: threading.RLock | None = None,
    ) -> None:
        if weight_limit < 1:
            raise ValueError(f"weight_limit must be positive, got {weight_limit}")
        if ban_seconds <= 0:
            raise ValueError(f"ban_seconds must be positive, got {ban_seconds}")
        self.weight_limit = weight_limit
        self.ban_seconds = ban_seconds
        self.now_ms = now_ms
        self._lock = lock or threading.RLock()
        self._windows: dict[int, _Window] = {}
        self._banned_until_ms: int | None = None

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

    def ban(self, client_ip: str) -> Reply:
        """The 418 fault's reply: banned for ``ban_seconds`` from now, though no ban is recorded."""
        now_ms = self.now_ms()
        return ban_reply(client_ip, now_ms + int(self.ban_seconds * 1000), now_ms)

    def stats(self) -> dict[str, object]:
        with self._lock:
            return {
                "weight_limit": self.weight_limit,
                "ban_seconds": self.ban_seconds,
                "banned_until_ms": self._banned_until_ms,
                "windows": [self._windows[start].as_dict() for start in sorted(self._windows)],
            }

    def reset(self) -> None:
        """Forget windows and bans."""
        with self._lock:
            self._windows.clear()
            self._banned_until_ms = None


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
    ORDER_PATH: lambda params: 1,  # GET, the order query; POST (placing) is routed on its own
}

