"""Binance's wire vocabulary shared by the replay's parts: paths, headers, and the reply with its error shape."""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_KLINES_LIMIT = 500
DEFAULT_FUNDING_LIMIT = 100
ORDER_PATH = "/fapi/v1/order"
API_KEY_HEADER = "X-MBX-APIKEY"
UNKNOWN_ERROR = "An unknown error occured while processing the request."
UNKNOWN_ERROR_503 = "Unknown error, please check your request or try again later."


@dataclass(frozen=True)
class Reply:
    """A response to write: status, JSON-able body (bytes: sent as they are), extra headers, and how to send it."""

    status: int
    body: object
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    truncate: bool = False


def error_reply(code: int, msg: str, status: int = 400) -> Reply:
    return Reply(status, {"code": code, "msg": msg})


def mandatory_reply(name: str) -> Reply:
    return error_reply(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")

