"""One session to one Binance USD-M base URL: the retry policy, weight accounting, the clock, signing.

Every request, public (klines, exchangeInfo, time) or SIGNED (orders), goes through
`BinanceHttp._request`, so market data and orders share one policy:

- the weight limiter reserves a request's weight before sending and adopts
  X-MBX-USED-WEIGHT-1M from every answer; an endpoint with a limit of its own
  (fundingRate's 500 requests per 5 minutes) also reserves one request of its `quota`;
- 429: wait (Retry-After when present, else the rest of the window; with a quota, of
  whichever window ends later, as the answer does not say which limit it was), slow the
  limiters down and send the same request again, a bounded number of times; it was not processed;
- 418 (IP ban) and other 4xx: stop at once with the exchange's code and message;
- 5xx, timeouts, dropped connections, truncated or unreadable bodies: bounded retries with
  full jitter for idempotent GETs only; a POST (an order) is never resent here, its outcome
  is unknown and the caller decides (the broker queries before it resends);
- SIGNED requests: `timestamp` and `recvWindow`, the signature last, the key in the
  X-MBX-APIKEY header, re-signed on every attempt, one clock re-sync after -1021, and
  redirects never followed (a 3xx raises naming the status only). Their errors never
  carry the query, the key or the URL.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal, Self, TypeVar
from urllib.parse import urlencode

import requests
from pydantic import SecretStr

from coin_platform.binance.errors import (
    BinanceError,
    BinanceUnavailableError,
    IPBannedError,
    RateLimitedError,
    RedirectRefusedError,
    api_error,
    error_fields,
)
from coin_platform.binance.weights import USED_WEIGHT_HEADER, WeightLimiter

API_KEY_HEADER = "X-MBX-APIKEY"
INVALID_TIMESTAMP = -1021
TRANSPORT_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)
T = TypeVar("T")


class MalformedResponse(ValueError):
    """Raised by a `decode` callable: the body is JSON but not the answer expected; its text is the kind."""


def sign(secret: str, total_params: str) -> str:
    """Binance's SIGNED-endpoint signature: hex HMAC-SHA256, keyed by the secret, of the params exactly as sent."""
    return hmac.new(secret.encode(), total_params.encode(), hashlib.sha256).hexdigest()


def full_jitter_s(rng: random.Random, attempt: int, policy: RetryPolicy) -> float:
    """Full jitter: a uniform wait up to base × 2^(attempt−1), capped (attempt counts from 1)."""
    return rng.uniform(0, min(policy.backoff_cap_s, policy.backoff_base_s * 2 ** (attempt - 1)))


def retry_after(headers: Any) -> float | None:
    """The Retry-After header in seconds, or None when absent or unreadable."""
    value = headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


@dataclass(frozen=True)
class Credentials:
    """An API key and secret; as SecretStr their repr shows neither."""

    api_key: SecretStr
    api_secret: SecretStr


@dataclass(frozen=True)
class RetryPolicy:
    """How often a request is tried again: transient failures (GET only) and 429 waits."""

    max_retries: int = 5
    max_rate_limit_waits: int = 10
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 30.0

    def but(self, **changes: Any) -> RetryPolicy:
        return replace(self, **changes)


class Closing:
    """`with` support for what owns a session: the block closes it."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class BinanceHttp(Closing):
    """The HTTP layer the market-data client and the order broker share (one session, limiter, clock)."""

    def __init__(
        self,
        base_url: str,
        *,
        limiter: WeightLimiter | None = None,
        session: requests.Session | None = None,
        timeout_s: float = 10.0,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.limiter = limiter or WeightLimiter()
        self.session = session or requests.Session()
        self.timeout_s = timeout_s
        self.policy = policy or RetryPolicy()
        self._sleep = sleep
        self._rng = rng or random.Random()
        self.stats = {"requests": 0, "retries": 0, "rate_limited": 0, "weight": 0}

    def __repr__(self) -> str:
        return f"BinanceHttp(base_url={self.base_url!r})"

    def close(self) -> None:
        self.session.close()

    def backoff_s(self, attempt: int, policy: RetryPolicy | None = None) -> float:
        return full_jitter_s(self._rng, attempt, policy or self.policy)

    def get(
        self,
        path: str,
        params: dict[str, Any],
        weight: int,
        decode: Callable[[Any], T],
        *,
        policy: RetryPolicy | None = None,
        quota: WeightLimiter | None = None,
    ) -> T:
        """A public GET; `decode` turns the JSON body into the answer (ValueError: unusable, retried).

        `quota`: the endpoint's own request limit, one request of it reserved per attempt."""
        return self._request("GET", path, params, weight, decode, policy=policy, quota=quota)

    def signed_request(
        self,
        method: Literal["GET", "POST"],
        path: str,
        params: dict[str, Any],
        credentials: Credentials,
        *,
        weight: int,
        decode: Callable[[Any], T],
        recv_window_ms: int = 5000,
        policy: RetryPolicy | None = None,
    ) -> T:
        """A SIGNED request. A POST meeting a transient failure raises BinanceUnavailableError at once."""
        return self._request(
            method,
            path,
            params,
            weight,
            decode,
            credentials=credentials,
            recv_window_ms=recv_window_ms,
            policy=policy,
        )

    def server_time_ms(self) -> int:
        return self.get("/fapi/v1/time", {}, 1, lambda payload: int(payload["serverTime"]))

    def sync_clock(self) -> int:
        """Measure the exchange clock's offset from ours (ms) so windows, 'closed' and timestamps agree."""
        before = self.limiter.local_ms()
        server_ms = self.server_time_ms()
        after = self.limiter.local_ms()
        offset = server_ms - (before + after) // 2
        self.limiter.server_offset_ms = offset
        return offset

    # -- the one retry loop ---------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        params: dict[str, Any],
        weight: int,
        decode: Callable[[Any], T],
        *,
        credentials: Credentials | None = None,
        recv_window_ms: int = 5000,
        policy: RetryPolicy | None = None,
        quota: WeightLimiter | None = None,
    ) -> T:
        policy = policy or self.policy
        limiters = [self.limiter] if quota is None else [self.limiter, quota]
        signed = credentials is not None
        transient_failures = 0
        rate_limit_waits = 0
        resynced = False
        while True:
            window = self.limiter.acquire(weight)
            if quota is not None:
                quota.acquire(1)
            self.stats["requests"] += 1
            self.stats["weight"] += weight
            problem: str
            try:
                if credentials is None:
                    response = self.session.get(f"{self.base_url}{path}", params=params, timeout=self.timeout_s)
                else:
                    response = self._send_signed(method, path, params, credentials, recv_window_ms)
                body = response.content
            except TRANSPORT_ERRORS as exc:
                # Signed: the type only, requests' own text repeats the signed URL.
                name = type(exc).__name__
                problem = f"{name} after up to {self.timeout_s:g} s" if signed else f"{name}: {exc}"
            else:
                self.limiter.observe(response.headers.get(USED_WEIGHT_HEADER), window)
                status = response.status_code
                if signed and 300 <= status < 400:
                    raise RedirectRefusedError(status, path)
                if status == 418:
                    code, message = error_fields(body)
                    raise IPBannedError(retry_after(response.headers), message, code)
                if status == 429:
                    rate_limit_waits += 1
                    self.stats["rate_limited"] += 1
                    if rate_limit_waits > policy.max_rate_limit_waits:
                        raise RateLimitedError(path, rate_limit_waits - 1, *error_fields(body))
                    wait_after = retry_after(response.headers)
                    self._sleep(max([limiter.back_off(wait_after) for limiter in limiters]))
                    continue  # not processed: the same request is safe after the wait
                if 400 <= status < 500:
                    code, message = error_fields(body)
                    if signed and code == INVALID_TIMESTAMP and not resynced:
                        resynced = True  # refused for our clock: measure the exchange's and sign again
                        try:
                            self.sync_clock()
                        except BinanceError:
                            raise api_error(status, code, message, path) from None
                        continue
                    raise api_error(status, code, message, path)
                if status >= 500:
                    problem = f"HTTP {status}: {error_fields(body)[1]}"
                else:
                    try:
                        return decode(response.json())
                    except ValueError as exc:
                        if signed:
                            kind = str(exc) if isinstance(exc, MalformedResponse) else type(exc).__name__
                            problem = f"unreadable reply to {method}: {kind}"
                        else:
                            problem = f"unusable response body: {exc}"
            if method != "GET":  # not idempotent: a resend could repeat what the exchange already did
                raise BinanceUnavailableError(f"{method} {path}: outcome unknown ({problem})", problem)
            transient_failures += 1
            if transient_failures > policy.max_retries:
                raise BinanceUnavailableError(
                    f"{path} failed {transient_failures} times; last problem: {problem}", problem
                )
            self.stats["retries"] += 1
            self._sleep(self.backoff_s(transient_failures, policy))

    def _send_signed(
        self, method: str, path: str, params: dict[str, Any], credentials: Credentials, recv_window_ms: int
    ) -> requests.Response:
        query = urlencode({**params, "recvWindow": recv_window_ms, "timestamp": self.limiter.now_ms()})
        signed = f"{query}&signature={sign(credentials.api_secret.get_secret_value(), query)}"
        headers = {API_KEY_HEADER: credentials.api_key.get_secret_value()}
        if method == "GET":
            return self.session.get(
                f"{self.base_url}{path}?{signed}", headers=headers, timeout=self.timeout_s, allow_redirects=False
            )
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        return self.session.request(
            method,
            f"{self.base_url}{path}",
            data=signed,
            headers=headers,
            timeout=self.timeout_s,
            allow_redirects=False,
        )
