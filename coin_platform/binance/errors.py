"""The errors of the Binance HTTP layer, and reading the exchange's `{"code", "msg"}` error body.

Every error carries what a caller needs to decide (status, the exchange's code and message) and
never a request's query, headers or URL: a signed request's query and key must not reach a message.
"""

from __future__ import annotations

import json
from typing import Any

INVALID_SYMBOL_CODE = -1121


class BinanceError(RuntimeError):
    """Base class of every error the Binance layer raises."""


class BinanceAPIError(BinanceError):
    """A request the exchange refused (4xx): retrying the same request cannot help."""

    def __init__(self, status: int, code: int | None, message: str, path: str) -> None:
        super().__init__(f"Binance {path} answered HTTP {status} (code {code}): {message}")
        self.status = status
        self.code = code
        self.message = message


class InvalidSymbolError(BinanceAPIError):
    """The symbol is not listed on USD-M futures."""


class RedirectRefusedError(BinanceAPIError):
    """A 3xx to a signed request: never followed, it would hand the signed query and the key to another host."""

    def __init__(self, status: int, path: str) -> None:
        super().__init__(status, None, "a redirect, not followed: signed calls stay on the endpoint", path)


class IPBannedError(BinanceError):
    """HTTP 418: the IP is banned for ignoring 429s; retrying would extend the ban."""

    status = 418

    def __init__(self, retry_after_s: float | None, message: str, code: int | None = None) -> None:
        wait = f" for {retry_after_s:.0f} s" if retry_after_s is not None else ""
        super().__init__(
            f"Binance banned this IP{wait} (HTTP 418: {message}); "
            "stopping instead of retrying — wait out the ban before the next run"
        )
        self.retry_after_s = retry_after_s
        self.code = code
        self.message = message


class BinanceUnavailableError(BinanceError):
    """Transient failures (5xx, timeouts, broken bodies) outlasted the retry budget, or a request that
    is not retried (an order POST) met one: then its outcome is unknown. `problem` names the last one."""

    def __init__(self, text: str, problem: str | None = None) -> None:
        super().__init__(text)
        self.problem = problem if problem is not None else text


class RateLimitedError(BinanceUnavailableError):
    """Still 429 after the allowed waits: the request was not processed."""

    status = 429

    def __init__(self, path: str, waits: int, code: int | None, message: str) -> None:
        super().__init__(f"{path}: still rate limited (429) after {waits} waits")
        self.code = code
        self.message = message


def error_fields(body: bytes) -> tuple[int | None, str]:
    """The exchange's (code, msg) from an error body, or (None, the body's start) when it is not JSON."""
    try:
        payload: Any = json.loads(body)
        return payload.get("code"), str(payload.get("msg", ""))
    except (ValueError, AttributeError):
        return None, body[:200].decode("utf-8", "replace")


def api_error(status: int, code: int | None, message: str, path: str) -> BinanceAPIError:
    """The error for a 4xx answer: InvalidSymbolError for -1121, BinanceAPIError otherwise."""
    error = InvalidSymbolError if code == INVALID_SYMBOL_CODE else BinanceAPIError
    return error(status, code, message, path)
