"""Wire helpers for the replay tests: plain HTTP requests as a client sends them, and their constants."""

from __future__ import annotations

import time

import requests

MINUTE = 60_000
HOUR = 3_600_000
DAY = 86_400_000
DAY_START = 1_710_028_800_000  # 2024-03-10T00:00:00Z, a day well in the past
LISTING = 1_483_228_800_000  # 2017-01-01T00:00:00Z, the replay's first candle
WEIGHT = "X-MBX-USED-WEIGHT-1M"
STEP_MS = {"1m": MINUTE, "15m": 15 * MINUTE, "1h": HOUR, "1d": DAY}


def get(url: str, path: str = "/fapi/v1/klines", **params: object) -> requests.Response:
    return requests.get(f"{url}{path}", params=params, timeout=30)


def rows(url: str, **params: object) -> list[list]:
    response = get(url, **params)
    assert response.status_code == 200, response.text
    return response.json()


def server_time(url: str) -> int:
    return get(url, "/fapi/v1/time").json()["serverTime"]


def wait_for_fresh_minute(seconds_needed: float, window_s: float = 60) -> None:
    """Weight windows are wall-clock minutes (fundingRate's: 5 minutes, `window_s=300`): start a budget test
    where it cannot straddle one."""
    remaining = window_s - time.time() % window_s
    if remaining < seconds_needed:
        time.sleep(remaining + 0.05)


def statuses(url: str, count: int) -> list[int]:
    return [get(url, symbol="BTCUSDT", interval="1m", limit=1).status_code for _ in range(count)]
