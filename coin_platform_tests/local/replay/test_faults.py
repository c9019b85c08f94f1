"""The replay's fault plans over real HTTP: every kind reaches the client, triggers count, bad plans are refused.

Everything here goes through the `coin replay serve` process the fixtures
start, so what is tested is what a client sees on the wire.
"""

from __future__ import annotations

import datetime as dt
import re
import time

import pytest
import requests

from coin_platform.local.replay import parse_faults
from coin_platform.market.klines import MalformedKlinesError, clean_klines, parse_kline_rows
from coin_platform_tests.local.replay.wire import (
    DAY,
    DAY_START,
    MINUTE,
    WEIGHT,
    get,
    rows,
    statuses,
    wait_for_fresh_minute,
)


def test_each_fault_kind_reaches_the_client(start_replay):
    plan = (
        "500:at=1,502:at=2,503:at=3,504:at=4,429:at=5,418:at=6,truncate:at=7,malformed:at=8+9,"
        "slow:at=10:delay=0.5"
    )
    server = start_replay(faults=plan, ban_seconds=3)
    query = dict(symbol="BTCUSDT", interval="1m", startTime=DAY_START, limit=20)
    for status in (500, 502, 503, 504):
        response = get(server.url, **query)
        assert response.status_code == status and response.json()["code"] == -1000
        assert WEIGHT in response.headers
    limited = get(server.url, **query)
    assert (limited.status_code, limited.json()["code"], limited.headers["Retry-After"]) == (429, -1003, "1")
    banned = get(server.url, **query)
    assert banned.status_code == 418 and "banned until" in banned.json()["msg"]
    assert 1 <= int(banned.headers["Retry-After"]) <= 3
    truncated = requests.get(f"{server.url}/fapi/v1/klines", params=query, stream=True, timeout=30)
    assert truncated.status_code == 200 and int(truncated.headers["Content-Length"]) > 100
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        truncated.content  # noqa: B018 (reading the body is the test)
    with pytest.raises(MalformedKlinesError, match="12-field"):
        parse_kline_rows(rows(server.url, **query))
    with pytest.raises(MalformedKlinesError, match="not a number"):
        parse_kline_rows(rows(server.url, **query))
    started = time.monotonic()
    slow = rows(server.url, **query)
    assert time.monotonic() - started >= 0.5
    assert slow == rows(server.url, **query)  # the 11th request: no fault, the same candles
    assert server.stats()["faults_injected"] == {
        "500": 1,
        "502": 1,
        "503": 1,
        "504": 1,
        "429": 1,
        "418": 1,
        "truncate": 1,
        "malformed": 2,
        "slow": 1,
    }
    assert server.stats()["klines_requests"] == 11


def test_bad_candles_are_well_formed_rows_that_cleaning_quarantines(start_replay):
    server = start_replay(faults="bad_candles:at=1")
    query = dict(symbol="BTCUSDT", interval="1m", startTime=DAY_START, limit=20)
    spoiled, clean = rows(server.url, **query), rows(server.url, **query)
    assert [i for i, (a, b) in enumerate(zip(spoiled, clean, strict=True)) if a != b] == list(range(10, 16))
    now = dt.datetime.fromtimestamp((DAY_START + DAY) / 1000, dt.UTC)
    cleaned = clean_klines(parse_kline_rows(spoiled), "1m", now=now)
    assert cleaned.frame.height == 14
    assert cleaned.quarantined["open_time"].dt.epoch("ms").to_list() == [DAY_START + i * MINUTE for i in range(10, 16)]
    assert cleaned.quarantined["reason"].to_list() == [
        "non-finite close",
        "non-finite high; non-finite close",
        "non-positive low",
        "high < low; open outside [low, high]; close outside [low, high]",
        "open outside [low, high]",
        "negative volume",
    ]
    assert server.stats()["faults_injected"] == {"bad_candles": 1}


def test_fault_triggers_count_klines_requests(start_replay):
    server = start_replay(faults="503:every=3")
    assert get(server.url, "/fapi/v1/ping").status_code == 200  # not a klines request: not counted
    assert statuses(server.url, 7) == [200, 200, 503, 200, 200, 503, 200]
    server.set_faults("500:first=2")
    assert statuses(server.url, 3) == [500, 500, 200]
    server.set_faults("502:p=0.5:seed=7")
    pattern = statuses(server.url, 20)
    assert set(pattern) == {200, 502}
    server.reset()
    assert statuses(server.url, 20) == pattern  # seeded: the same plan fails the same requests
    (other_seed,) = parse_faults("502:p=0.5:seed=8")
    assert [502 if other_seed.fires(n) else 200 for n in range(1, 21)] != pattern


@pytest.mark.parametrize(
    "spec",
    [
        "bogus:every=2",
        "503",
        "503:every=0",
        "503:every=2:at=3",
        "500:at=1:delay=1",
        "slow:at=x",
        "503:p=2",
        "503:every",
        "503:every=2:every=3",
        "503:every=2:seed=1",
        "503:at=1:on=orders",
        "placed_503:at=1:on=klines",
        "lag:at=1:on=order",
        "malformed:at=1:on=order",
        "bad_candles:at=1:on=funding",
        "corrupt_zip:at=1:on=klines",
        "unpublished:every=1:on=order",
        "503:file=BTCUSDT-1m-2024-01.zip",
        "corrupt_zip:file=",
    ],
)
def test_bad_fault_specs_are_refused_by_item(spec):
    with pytest.raises(ValueError, match=re.escape(repr(spec))):
        parse_faults(f"429:every=5,{spec}")


def test_a_file_rule_fails_every_request_of_that_archive_file_only():
    (rule,) = parse_faults("corrupt_zip:file=BTCUSDT-1m-2024-01.zip")
    assert (rule.target, rule.every, rule.file) == ("archive", 1, "BTCUSDT-1m-2024-01.zip")
    assert rule.fires(7, "BTCUSDT-1m-2024-01.zip") and not rule.fires(7, "BTCUSDT-1m-2024-02.zip")
    (timed,) = parse_faults("503:on=archive:file=X.zip:at=2")
    assert timed.fires(2, "X.zip") and not timed.fires(1, "X.zip")


def test_a_bad_fault_plan_stops_the_server_with_a_clear_error(start_replay):
    with pytest.raises(RuntimeError, match="bogus:at=1"):
        start_replay(faults="bogus:at=1")


def test_stats_reset_and_fault_endpoints(start_replay):
    server = start_replay()
    wait_for_fresh_minute(5)
    assert server.reset()["windows"] == []
    rows(server.url, symbol="BTCUSDT", interval="1m", limit=10)
    rows(server.url, symbol="BTCUSDT", interval="1h", limit=200)
    get(server.url, "/fapi/v1/ping")
    server.stats()  # control calls cost nothing
    stats = server.stats()
    assert stats["weight_limit"] == 2400 and stats["klines_requests"] == 2
    assert [(w["weight"], w["requests"]) for w in stats["windows"]] == [(4, 3)]
    assert server.set_faults("504:at=1")["faults"] == "504:at=1"
    assert statuses(server.url, 2) == [504, 200]
    bad = requests.post(f"{server.url}/_replay/faults", json={"faults": "504:sometimes"}, timeout=5)
    assert bad.status_code == 400 and "504:sometimes" in bad.json()["error"]
    assert server.stats()["faults"] == "504:at=1"  # the old plan stays
    cleared = server.reset()
    assert (cleared["windows"], cleared["faults_injected"], cleared["klines_requests"]) == ([], {}, 0)
    assert statuses(server.url, 1) == [504]  # the plan counts from the reset
