"""A request-weight limiter for Binance's per-IP, per-minute REQUEST_WEIGHT budget.

Binance counts weight in fixed windows aligned to the clock minute and reports
the IP's running total in `X-MBX-USED-WEIGHT-1M` on every response. The limiter
reserves a request's weight before sending, trusts the header afterwards (it
includes other processes on the same IP), and waits for the next window
instead of provoking a 429.

Some endpoints have a limit of their own besides the weight (GET /fapi/v1/fundingRate:
500 requests per 5 minutes per IP); `sibling` makes a limiter for it on the same clock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

WINDOW_MS = 60_000
USED_WEIGHT_HEADER = "X-MBX-USED-WEIGHT-1M"


class WeightLimiter:
    """Keeps the used weight of each window (1 minute unless `window_ms` says otherwise) under
    `limit × fraction`."""

    def __init__(
        self,
        limit: int = 2400,
        fraction: float = 0.95,
        *,
        enabled: bool = True,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        window_ms: int = WINDOW_MS,
    ) -> None:
        if limit <= 0 or not 0 < fraction <= 1 or window_ms <= 0:
            raise ValueError(f"invalid weight budget: limit={limit}, fraction={fraction}, window_ms={window_ms}")
        self.limit = limit
        self.fraction = fraction
        self.enabled = enabled
        self.window_ms = window_ms
        self.server_offset_ms = 0
        self.waited_seconds = 0.0
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._window = -1
        self._used = 0

    @property
    def budget(self) -> int:
        return max(1, int(self.limit * self.fraction))

    def sibling(self, limit: int, window_ms: int) -> WeightLimiter:
        """A limiter for another of the exchange's limits: the same share, switch and sleep, and this
        limiter's exchange time (its measured clock offset included) as its clock."""
        return WeightLimiter(
            limit,
            self.fraction,
            enabled=self.enabled,
            clock=lambda: self.now_ms() / 1000,
            sleep=self._sleep,
            window_ms=window_ms,
        )

    def adopt_rate_limits(self, rate_limits: Iterable[dict[str, Any]]) -> None:
        """Take the per-minute REQUEST_WEIGHT limit exchangeInfo publishes (its `rateLimits`)."""
        for limit in rate_limits:
            if (
                limit.get("rateLimitType") == "REQUEST_WEIGHT"
                and limit.get("interval") == "MINUTE"
                and int(limit.get("intervalNum", 1)) == 1
            ):
                self.limit = int(limit["limit"])

    def local_ms(self) -> int:
        return int(self._clock() * 1000)

    def now_ms(self) -> int:
        """Exchange time: the local clock corrected by the measured server offset."""
        return self.local_ms() + self.server_offset_ms

    def _roll(self, now_ms: int) -> None:
        window = now_ms // self.window_ms
        if window != self._window:
            self._window = window
            self._used = 0

    def acquire(self, weight: int) -> int:
        """Reserve `weight` in the current window, sleeping into the next one if it is full.

        Returns the window the request is sent in, for `observe`.
        """
        while True:
            with self._lock:
                now = self.now_ms()
                self._roll(now)
                if not self.enabled:
                    return self._window
                if weight > self.budget:
                    raise ValueError(
                        f"a request of weight {weight} can never fit a budget of {self.budget}"
                    )
                if self._used + weight <= self.budget:
                    self._used += weight
                    return self._window
                wait_s = ((self._window + 1) * self.window_ms - now) / 1000 + 0.05
            self.waited_seconds += wait_s
            self._sleep(wait_s)

    def observe(self, used_weight_header: str | None, sent_in_window: int) -> None:
        """Adopt the exchange's count of used weight when it is higher than ours.

        A response to a request sent in an earlier window reports that window's
        total and is ignored.
        """
        if used_weight_header is None:
            return
        try:
            used = int(used_weight_header)
        except ValueError:
            return
        with self._lock:
            self._roll(self.now_ms())
            if sent_in_window == self._window:
                self._used = max(self._used, used)

    def back_off(self, retry_after_s: float | None) -> float:
        """After a 429: lower our share and say how long to wait.

        The exchange's Retry-After wins; without one, the rest of this window
        is treated as spent.
        """
        with self._lock:
            self.fraction = max(0.5, self.fraction * 0.9)
            if retry_after_s is not None:
                return retry_after_s
            now = self.now_ms()
            self._roll(now)
            self._used = max(self._used, self.budget)
            return ((self._window + 1) * self.window_ms - now) / 1000 + 0.05
