"""The replay's weight budget over real HTTP: the used-weight header, 429s and the 418 ban.

Everything here goes through the `coin replay serve` process the fixtures
start, so what is tested is what a client sees on the wire.
"""

from __future__ import annotations

import re
import time

import numpy as np

from coin_platform_tests.local.replay.wire import DAY_START, WEIGHT, get, wait_for_fresh_minute


def test_every_response_reports_the_weight_it_used(start_replay):
    server = start_replay()
    klines = dict(symbol="BTCUSDT", interval="1m", startTime=DAY_START)
    calls = [
        ("/fapi/v1/ping", {}, 1),
        ("/fapi/v1/time", {}, 1),
        ("/fapi/v1/exchangeInfo", {}, 1),
        ("/fapi/v1/klines", klines, 5),
    ]  # the default limit, 500
    calls += [
        ("/fapi/v1/klines", dict(klines, limit=limit), weight)
        for limit, weight in (
            (1, 1),
            (99, 1),
            (100, 2),
            (499, 2),
            (500, 5),
            (1000, 5),
            (1001, 10),
            (1500, 10),
        )
    ]
    wait_for_fresh_minute(10)
    server.reset()
    used = []
    for path, params, _ in calls:
        response = get(server.url, path, **params)
        assert response.status_code == 200 and response.headers["Content-Type"] == "application/json"
        used.append(int(response.headers[WEIGHT]))
    weights = [weight for _, _, weight in calls]
    assert np.diff([0, *used]).tolist() == weights
    (window,) = server.stats()["windows"]
    assert (window["weight"], window["requests"]) == (sum(weights), len(calls))


def test_over_budget_requests_get_429_and_then_a_418_ban(start_replay):
    server = start_replay(weight_limit=10, ban_seconds=2)
    wait_for_fresh_minute(12)
    server.reset()
    assert [get(server.url, "/fapi/v1/ping").status_code for _ in range(10)] == [200] * 10
    for _ in range(4):  # the first 429 and three more are tolerated
        refused = get(server.url, symbol="BTCUSDT", interval="1m", limit=5)
        assert refused.status_code == 429
        assert refused.json() == {
            "code": -1003,
            "msg": (
                "Too many requests; current limit of IP(127.0.0.1) is 10 requests per minute. "
                "Please use WebSocket Streams for live updates to avoid polling the API."
            ),
        }
        assert refused.headers[WEIGHT] == "10"  # refused requests cost nothing
        assert 1 <= int(refused.headers["Retry-After"]) <= 60 - int(time.time() % 60) + 1
    banned = get(server.url, "/fapi/v1/time")
    assert banned.status_code == 418
    until = int(
        re.fullmatch(
            r"Way too many requests; IP\(127\.0\.0\.1\) banned until (\d+)\. "
            r"Please use WebSocket Streams for live updates to avoid bans\.",
            banned.json()["msg"],
        )[1]
    )
    assert banned.json()["code"] == -1003
    assert 0 < until - time.time() * 1000 <= 2000 and banned.headers["Retry-After"] in ("1", "2")
    assert get(server.url, "/fapi/v1/ping").status_code == 418  # every request while banned
    window = server.stats()["windows"][-1]
    assert (window["weight"], window["requests"], window["rejected_429"], window["rejected_418"]) == (
        10,
        16,
        4,
        2,
    )
    time.sleep(until / 1000 - time.time() + 0.1)
    assert get(server.url, "/fapi/v1/ping").status_code == 429  # ban over, budget still spent
    server.reset()
    assert get(server.url, "/fapi/v1/ping").status_code == 200
