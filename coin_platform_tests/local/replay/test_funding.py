"""The replay's GET /fapi/v1/fundingRate over real HTTP: Binance's windows and errors, deterministic
realistic rates, its own 500-per-5-minutes limit, and the fault plan's funding faults.

Everything here goes through the `coin replay serve` process the fixtures start, so what is tested is
what a client sees on the wire.
"""

from __future__ import annotations

import re
import time

import pytest
import requests

from coin_platform.market.funding import (
    FUNDING_RATE_CAP,
    MalformedFundingError,
    check_funding_times,
    parse_funding_rates,
)
from coin_platform.market.klines import parse_kline_rows
from coin_platform_tests.local.replay.wire import (
    DAY,
    DAY_START,
    HOUR,
    LISTING,
    WEIGHT,
    get,
    server_time,
    wait_for_fresh_minute,
)

PATH = "/fapi/v1/fundingRate"
EIGHT_HOURS = 8 * HOUR


def funding(url: str, **params: object) -> list[dict]:
    response = get(url, PATH, **params)
    assert response.status_code == 200, response.text
    return response.json()


def test_windows_follow_binance(replay_server):
    url = replay_server.url
    day = funding(url, symbol="BTCUSDT", startTime=DAY_START, endTime=DAY_START + DAY - 1)
    assert [item["fundingTime"] // HOUR * HOUR for item in day] == [DAY_START + i * EIGHT_HOURS for i in range(3)]
    assert all(0 <= item["fundingTime"] - DAY_START - i * EIGHT_HOURS < 20 for i, item in enumerate(day))
    assert funding(url, symbol="BTCUSDT", startTime=day[1]["fundingTime"], endTime=day[2]["fundingTime"]) == day[1:]
    assert len(funding(url, symbol="BTCUSDT", startTime=DAY_START)) == 100  # the default limit
    assert len(funding(url, symbol="BTCUSDT", startTime=DAY_START, limit=1000)) == 1000
    before = funding(url, symbol="BTCUSDT", endTime=DAY_START + DAY - 1, limit=3)
    assert before == day  # only endTime: the last `limit` up to it
    assert funding(url, symbol="BTCUSDT", startTime=0, limit=1)[0]["fundingTime"] // HOUR * HOUR == LISTING
    latest = funding(url, symbol="BTCUSDT", limit=2)
    assert latest[-1]["fundingTime"] <= server_time(url) < latest[-1]["fundingTime"] + EIGHT_HOURS
    assert funding(url, symbol="BTCUSDT", startTime=server_time(url) + 1) == []  # nothing still ahead
    everyone = funding(url, startTime=DAY_START, limit=60)  # no symbol: every listed one, by time
    assert len(everyone) == 60 and len({item["symbol"] for item in everyone}) == 20
    assert [item["fundingTime"] for item in everyone] == sorted(item["fundingTime"] for item in everyone)
    assert [item for item in everyone if item["symbol"] == "BTCUSDT"] == day


def test_bad_parameters_get_binance_errors(replay_server):
    query = dict(symbol="BTCUSDT", startTime=DAY_START)
    cases = [
        (dict(query, limit=0), -1130),
        (dict(query, limit=1001), -1130),
        (dict(query, symbol="NOSUCHUSDT"), -1121),
        (dict(query, startTime="yesterday"), -1100),
        (dict(query, endTime=DAY_START - 1), -1023),
    ]
    for params, code in cases:
        response = get(replay_server.url, PATH, **params)
        assert (response.status_code, response.json()["code"]) == (400, code), params


def test_rates_are_deterministic_realistic_and_priced_at_the_funding_hour(replay_server, start_replay):
    query = dict(symbol="ETHUSDT", startTime=DAY_START - 300 * DAY, limit=1000)
    served = funding(replay_server.url, **query)
    assert funding(start_replay().url, **query) == served  # a restarted server serves the same
    assert (
        funding(replay_server.url, symbol="ETHUSDT", startTime=served[500]["fundingTime"], limit=5) == served[500:505]
    )
    frame = parse_funding_rates(served)
    grid = check_funding_times(frame)
    assert grid.passed and grid.details["funding_interval_hours"] == 8 and grid.details["missing_between"] == 0
    rates = frame["funding_rate"]
    assert 0.6 < (rates == 0.0001).mean() < 0.9  # the interest rate, unless the premium is out of its band
    assert rates.abs().max() <= FUNDING_RATE_CAP and rates.min() < 0 < rates.max()
    assert all(re.fullmatch(r"-?\d\.\d{8}", item["fundingRate"]) for item in served)
    hour = served[0]["fundingTime"] // HOUR * HOUR
    (candle,) = get(replay_server.url, symbol="ETHUSDT", interval="1h", startTime=hour, limit=1).json()
    assert served[0]["markPrice"] == candle[1]  # the open of the funding hour
    assert frame["mark_price"][0] == parse_kline_rows([candle])["open"][0]


def test_funding_costs_no_weight_but_counts_against_its_own_limit_then_bans(start_replay):
    server = start_replay(funding_limit=3, ban_seconds=2)
    query = dict(symbol="BTCUSDT", startTime=DAY_START, limit=5)
    wait_for_fresh_minute(10, window_s=300)
    server.reset()
    used = [int(get(server.url, PATH, **query).headers[WEIGHT]) for _ in range(3)]
    assert used == [0, 0, 0]  # no REQUEST_WEIGHT
    for _ in range(4):  # the first 429 and three more are tolerated
        refused = get(server.url, PATH, **query)
        assert (refused.status_code, refused.json()["code"]) == (429, -1003)
        assert "is 3 requests per 5 minutes for /fapi/v1/fundingRate" in refused.json()["msg"]
        assert 1 <= int(refused.headers["Retry-After"]) <= 300
    assert get(server.url, "/fapi/v1/klines", symbol="BTCUSDT", interval="1m", limit=1).status_code == 200
    assert get(server.url, PATH, **query).status_code == 418  # then a ban for every request
    assert get(server.url, "/fapi/v1/ping").status_code == 418
    stats = server.stats()
    assert stats["funding_limit"] == 3 and stats["funding_requests"] == 3
    (window,) = stats["funding_windows"]
    assert (window["weight"], window["requests"], window["rejected_429"], window["rejected_418"]) == (3, 8, 4, 1)


def test_each_fault_kind_reaches_a_funding_client(start_replay):
    plan = (
        "500:at=1:on=funding,503:at=2:on=funding,429:at=3:on=funding,418:at=4:on=funding,"
        "truncate:at=5:on=funding,malformed:at=6+7:on=funding,slow:at=8:delay=0.5:on=funding"
    )
    server = start_replay(faults=plan, ban_seconds=3)
    query = dict(symbol="BTCUSDT", startTime=DAY_START, limit=20)
    assert [get(server.url, PATH, **query).status_code for _ in range(4)] == [500, 503, 429, 418]
    truncated = requests.get(f"{server.url}{PATH}", params=query, stream=True, timeout=30)
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        truncated.content  # noqa: B018 (reading the body is the test)
    with pytest.raises(MalformedFundingError, match="field 'fundingRate'"):
        parse_funding_rates(funding(server.url, **query))  # dropped
    with pytest.raises(MalformedFundingError, match="'not-a-rate'"):
        parse_funding_rates(funding(server.url, **query))  # broken
    started = time.monotonic()
    slow = funding(server.url, **query)
    assert time.monotonic() - started >= 0.5
    assert slow == funding(server.url, **query)  # the 9th: no fault, the same rates
    stats = server.stats()
    assert stats["faults_injected"] == {
        f"funding:{kind}": count
        for kind, count in (
            ("500", 1),
            ("503", 1),
            ("429", 1),
            ("418", 1),
            ("truncate", 1),
            ("malformed", 2),
            ("slow", 1),
        )
    }
    assert (stats["funding_requests"], stats["klines_requests"]) == (9, 0)
