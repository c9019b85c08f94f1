"""The replay server over real HTTP: Binance's semantics, exact synthetic candles, limits and faults.

Everything here goes through the `coin replay serve` process the fixtures
start, so what is tested is what a client sees on the wire.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import http.client
import json
import re
import socket
import time
from decimal import Decimal
from urllib.parse import urlencode

import numpy as np
import polars as pl
import pytest
import requests

from coin_platform.local.replay import DOCS_EXAMPLE_API_KEY, DOCS_EXAMPLE_API_SECRET, ORDER_PATH, parse_faults
from coin_platform.market.klines import (
    OHLCV_COLUMNS,
    MalformedKlinesError,
    clean_klines,
    parse_kline_rows,
    resample_ohlcv,
)
from coin_platform_tests.shared_data import load_json

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


def wait_for_fresh_minute(seconds_needed: float) -> None:
    """Weight windows are wall-clock minutes: start a budget test where it cannot straddle one."""
    remaining = 60 - time.time() % 60
    if remaining < seconds_needed:
        time.sleep(remaining + 0.05)


def statuses(url: str, count: int) -> list[int]:
    return [get(url, symbol="BTCUSDT", interval="1m", limit=1).status_code for _ in range(count)]


# -- candles --------------------------------------------------------------


def test_a_candle_does_not_depend_on_the_window_it_is_asked_in(replay_server):
    wide = rows(replay_server.url, symbol="BTCUSDT", interval="1m", startTime=DAY_START, limit=1500)
    narrow = rows(
        replay_server.url, symbol="BTCUSDT", interval="1m", startTime=DAY_START + 1000 * MINUTE, limit=100
    )
    assert narrow == wide[1000:1100]
    hourly = rows(
        replay_server.url, symbol="ETHUSDT", interval="1h", startTime=DAY_START - 5 * DAY, limit=200
    )
    ending = rows(replay_server.url, symbol="ETHUSDT", interval="1h", endTime=DAY_START + 2 * HOUR, limit=3)
    assert ending == hourly[5 * 24 : 5 * 24 + 3]


def test_a_restarted_server_serves_the_same_candles(replay_server, start_replay):
    restarted = start_replay()
    for interval, start in (("1m", DAY_START - 700 * MINUTE), ("1d", DAY_START - 400 * DAY)):
        query = dict(symbol="SOLUSDT", interval=interval, startTime=start, limit=1000)
        assert rows(restarted.url, **query) == rows(replay_server.url, **query)


@pytest.mark.parametrize("symbol", ["BTCUSDT", "DOGEUSDT"])
def test_coarser_candles_are_exact_aggregates_of_the_1m_candles(replay_server, symbol):
    day = dict(symbol=symbol, startTime=DAY_START, endTime=DAY_START + DAY - 1)
    minute_rows = rows(replay_server.url, interval="1m", limit=1440, **day)
    assert len(minute_rows) == 1440
    minutes = parse_kline_rows(minute_rows).select(OHLCV_COLUMNS)
    for interval in ("15m", "1h", "1d"):
        served_rows = rows(replay_server.url, interval=interval, limit=1000, **day)
        size = STEP_MS[interval] // MINUTE
        assert len(served_rows) == 1440 // size
        for index, row in enumerate(served_rows):  # the strings, to the last decimal
            group = minute_rows[index * size : (index + 1) * size]
            assert row[1] == group[0][1] and row[4] == group[-1][4]
            assert row[2] == max(group, key=lambda r: Decimal(r[2]))[2]
            assert row[3] == min(group, key=lambda r: Decimal(r[3]))[3]
            for field in (5, 7, 9, 10):
                assert row[field] == str(sum(Decimal(r[field]) for r in group))
            assert row[8] == sum(r[8] for r in group)
        served = parse_kline_rows(served_rows).select(OHLCV_COLUMNS)
        expected = resample_ohlcv(minutes, interval)
        assert (expected["candles"] == size).all()
        exact = ["open_time", "open", "high", "low", "close", "trades"]
        assert served.select(exact).equals(expected.select(exact))
        for column in ("volume", "quote_volume", "taker_buy_volume", "taker_buy_quote_volume"):
            assert served[column].to_list() == pytest.approx(expected[column].to_list(), rel=1e-12)


def test_candles_are_well_formed_continuous_and_on_the_tick_grid(replay_server):
    info = get(replay_server.url, "/fapi/v1/exchangeInfo").json()
    filters = {s["symbol"]: {f["filterType"]: f for f in s["filters"]} for s in info["symbols"]}
    for symbol, interval, start in (
        ("BTCUSDT", "1m", DAY_START - 700 * MINUTE),
        ("XRPUSDT", "1m", DAY_START),
        ("ADAUSDT", "1h", DAY_START - 40 * DAY),
        ("ETHUSDT", "1d", DAY_START - 900 * DAY),
    ):
        served = rows(replay_server.url, symbol=symbol, interval=interval, startTime=start, limit=1500)
        step = STEP_MS[interval]
        tick = Decimal(filters[symbol]["PRICE_FILTER"]["tickSize"])
        lot = Decimal(filters[symbol]["LOT_SIZE"]["stepSize"])
        frame = parse_kline_rows(served)
        assert frame.filter(
            (pl.col("low") > pl.min_horizontal("open", "close"))
            | (pl.col("high") < pl.max_horizontal("open", "close"))
            | (pl.col("low") <= 0)
            | (pl.col("volume") < 0)
            | (pl.col("taker_buy_volume") > pl.col("volume"))
            | (pl.col("taker_buy_quote_volume") > pl.col("quote_volume"))
            | (pl.col("trades") < 0)
        ).is_empty()
        for previous, row in zip(served, served[1:], strict=False):
            assert row[0] == previous[0] + step
            assert row[1] == previous[4]  # open == previous close, across midnight too
        for row in served:
            assert row[6] == row[0] + step - 1 and row[11] == "0"
            assert all(Decimal(price) % tick == 0 for price in row[1:5])
            assert Decimal(row[5]) % lot == 0 and Decimal(row[9]) % lot == 0
            assert len({len(price.partition(".")[2]) for price in row[1:5]}) == 1  # fixed decimals


def _daily(url: str, symbol: str, days: int = 1000) -> pl.DataFrame:
    return parse_kline_rows(rows(url, symbol=symbol, interval="1d", endTime=DAY_START, limit=days))


def _autocorrelation(values: np.ndarray, lag: int) -> float:
    centred = values - values.mean()
    return float(centred[:-lag] @ centred[lag:] / (centred @ centred))


@pytest.mark.parametrize("symbol", ["BTCUSDT", "ETHUSDT", "SOLUSDT", "NOTLISTEDUSDT"])
def test_daily_series_have_volatility_clusters_and_trends(replay_server, start_replay, symbol):
    url = replay_server.url if symbol != "NOTLISTEDUSDT" else start_replay(symbols=(symbol,)).url
    log_close = np.log(_daily(url, symbol)["close"].to_numpy())
    returns = np.diff(log_close)
    # Volatility clusters: big days follow big days.
    assert np.mean([_autocorrelation(np.abs(returns), lag) for lag in range(1, 6)]) > 0.1
    # Trends: 20-day moves are wider than 20 independent days would make them.
    variance_ratio = np.var(log_close[20:] - log_close[:-20]) / (20 * np.var(returns))
    assert variance_ratio > 1.3
    assert np.max(np.abs(log_close[60:] - log_close[:-60])) > 0.3


def test_symbols_move_independently(replay_server):
    btc, eth = (
        np.diff(np.log(_daily(replay_server.url, s, 500)["close"].to_numpy())) for s in ("BTCUSDT", "ETHUSDT")
    )
    assert abs(np.corrcoef(btc, eth)[0, 1]) < 0.3


def test_volume_follows_volatility_and_the_time_of_day(replay_server):
    day = rows(replay_server.url, symbol="BTCUSDT", interval="1m", startTime=DAY_START, limit=1440)
    minutes = parse_kline_rows(day)
    moves = np.abs(np.log(minutes["close"].to_numpy() / minutes["open"].to_numpy()))
    assert np.corrcoef(moves, minutes["volume"].to_numpy())[0, 1] > 0.3
    hours = parse_kline_rows(
        rows(
            replay_server.url, symbol="BTCUSDT", interval="1h", startTime=DAY_START - 30 * DAY, limit=30 * 24
        )
    )
    by_hour = hours["volume"].to_numpy().reshape(30, 24).mean(axis=0)
    assert by_hour.max() / by_hour.min() > 1.5


# -- Binance request semantics -------------------------------------------


def test_klines_windows_follow_binance(replay_server):
    url, query = replay_server.url, dict(symbol="BTCUSDT", interval="1m")
    after = rows(url, **query, startTime=DAY_START + 30_000, limit=10)  # not on a minute
    assert [r[0] for r in after] == [DAY_START + (i + 1) * MINUTE for i in range(10)]
    between = rows(url, **query, startTime=DAY_START, endTime=DAY_START + 59 * MINUTE, limit=1000)
    assert [r[0] for r in between] == [DAY_START + i * MINUTE for i in range(60)]  # both ends inclusive
    assert rows(url, **query, startTime=DAY_START, endTime=DAY_START + 59 * MINUTE, limit=7) == between[:7]
    before = rows(url, **query, endTime=DAY_START + 30_000, limit=5)
    assert [r[0] for r in before] == [DAY_START - i * MINUTE for i in range(4, -1, -1)]
    assert before[-1] == between[0]
    assert len(rows(url, **query, startTime=DAY_START)) == 500  # default limit
    assert rows(url, **query, startTime=0, limit=2)[0][0] == LISTING  # nothing before the listing
    assert rows(url, **query, startTime=server_time(url) + 2 * MINUTE) == []
    latest = rows(url, **query, limit=3)
    assert [r[0] for r in latest] == [latest[-1][0] - 2 * MINUTE, latest[-1][0] - MINUTE, latest[-1][0]]
    reversed_window = get(url, **query, startTime=DAY_START + MINUTE, endTime=DAY_START)
    assert reversed_window.status_code == 400 and reversed_window.json()["code"] == -1023


@pytest.mark.parametrize("interval", ["1m", "15m", "1h", "1d"])
def test_the_newest_candle_is_still_open_and_aggregates_the_minutes_so_far(replay_server, interval):
    url = replay_server.url
    for _ in range(3):  # a minute may tick over between the requests; then ask again
        before = server_time(url)
        first = rows(url, symbol="BTCUSDT", interval=interval, limit=2)
        minutes = rows(url, symbol="BTCUSDT", interval="1m", startTime=first[-1][0], limit=1440)
        again = rows(url, symbol="BTCUSDT", interval=interval, limit=2)
        if first == again:
            break
    else:
        pytest.fail("the open candle never held still for three requests")
    closed, open_ = first
    assert closed[6] < before <= open_[6]  # close_time in the future
    assert open_[0] <= before
    expected = resample_ohlcv(parse_kline_rows(minutes).select(OHLCV_COLUMNS), interval)
    exact = ["open_time", "open", "high", "low", "close", "trades"]
    assert parse_kline_rows([open_]).select(exact).equals(expected.select(exact))
    assert open_[5] == str(sum(Decimal(r[5]) for r in minutes))


def test_bad_klines_parameters_get_binance_errors(replay_server):
    url, query = replay_server.url, dict(symbol="BTCUSDT", interval="1m", startTime=DAY_START)
    cases = [
        (dict(query, limit=0), -1130),
        (dict(query, limit=1501), -1130),
        (dict(query, symbol="NOSUCHUSDT"), -1121),
        (dict(query, interval="2m"), -1120),
        (dict(query, interval="1H"), -1120),  # intervals are case-sensitive on Binance
        (dict(interval="1m"), -1102),
        (dict(query, startTime="yesterday"), -1100),
    ]
    for params, code in cases:
        response = get(url, **params)
        assert response.status_code == 400, params
        assert response.json()["code"] == code, params
        assert response.headers["Content-Type"] == "application/json"
        assert int(response.headers[WEIGHT]) >= 1
    assert get(url, **dict(query, symbol="NOSUCHUSDT")).json() == {"code": -1121, "msg": "Invalid symbol."}
    assert get(url, **dict(query, interval="2m")).json() == {"code": -1120, "msg": "Invalid interval."}
    assert len(rows(url, **dict(query, limit=1500))) == 1500


def test_exchange_info_lists_the_universe_and_the_configured_budget(start_replay):
    server = start_replay(weight_limit=1234, symbols=("PEPEXUSDT",))
    info = get(server.url, "/fapi/v1/exchangeInfo").json()
    assert info["timezone"] == "UTC" and abs(info["serverTime"] - time.time() * 1000) < 60_000
    assert {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 1234} in info[
        "rateLimits"
    ]
    assert {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300} in info[
        "rateLimits"
    ]
    symbols = {s["symbol"]: s for s in info["symbols"]}
    assert len(symbols) >= 20 and "PEPEXUSDT" in symbols
    assert all(s["status"] == "TRADING" and s["contractType"] == "PERPETUAL" for s in symbols.values())
    btc = symbols["BTCUSDT"]
    filters = {f["filterType"]: f for f in btc["filters"]}
    assert (btc["baseAsset"], btc["quoteAsset"]) == ("BTC", "USDT")
    assert (btc["pricePrecision"], btc["quantityPrecision"]) == (2, 3)
    assert filters["PRICE_FILTER"]["tickSize"] == "0.10" and filters["LOT_SIZE"]["stepSize"] == "0.001"
    assert filters["MARKET_LOT_SIZE"]["stepSize"] == "0.001"
    assert filters["LOT_SIZE"]["minQty"] == filters["MARKET_LOT_SIZE"]["minQty"] == "0.001"
    assert symbols["PEPEXUSDT"]["baseAsset"] == "PEPEX"
    assert len(rows(server.url, symbol="PEPEXUSDT", interval="1h", limit=5)) == 5


# -- weight budget --------------------------------------------------------


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


# -- faults ---------------------------------------------------------------


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
    ],
)
def test_bad_fault_specs_are_refused_by_item(spec):
    with pytest.raises(ValueError, match=re.escape(repr(spec))):
        parse_faults(f"429:every=5,{spec}")


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


def test_the_server_exits_cleanly_on_sigterm(start_replay):
    server = start_replay()
    server.stop()
    assert server.exit_code == 0
    assert "Traceback" not in server.log()


# -- request framing ------------------------------------------------------

MEBIBYTE = 1 << 20  # the largest request body the server promises to read


def raw_post(url: str, path: str, content_length: str) -> tuple[int, dict]:
    """POST with a hand-written Content-Length and no body; (status, JSON body) of the answer.

    A raw socket, because HTTP clients refuse to send such headers; its timeout turns a
    server that waits for a body that never comes into a failure instead of a hung test.
    """
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(f"POST {path} HTTP/1.1\r\nHost: {host}\r\n"
                           f"Content-Type: application/json\r\n"
                           f"Content-Length: {content_length}\r\n\r\n".encode())
        response = http.client.HTTPResponse(connection)
        response.begin()
        return response.status, json.loads(response.read())


@pytest.mark.parametrize("path", [ORDER_PATH, "/_replay/faults"])
@pytest.mark.parametrize("content_length", ["abc", "-1", "1e3", ""])
def test_a_bad_content_length_gets_a_json_400(replay_server, path, content_length):
    status, body = raw_post(replay_server.url, path, content_length)

    assert (status, body["code"]) == (400, -1100)
    assert "Content-Length" in body["msg"]
    assert get(replay_server.url, "/fapi/v1/ping").status_code == 200
    assert "Traceback" not in replay_server.log()


@pytest.mark.parametrize("path", [ORDER_PATH, "/_replay/faults"])
@pytest.mark.parametrize("content_length", [str(MEBIBYTE + 1), str(10**18), "9" * 5000],
                         ids=["1 MiB + 1", "10**18", "5000 digits"])
def test_a_body_over_the_limit_is_refused_unread(replay_server, path, content_length):
    status, body = raw_post(replay_server.url, path, content_length)

    assert (status, body["code"]) == (413, -1100)
    assert str(MEBIBYTE) in body["msg"]
    assert get(replay_server.url, "/fapi/v1/ping").status_code == 200
    assert "Traceback" not in replay_server.log()


# -- signed order endpoints -----------------------------------------------


def signed(
    url: str,
    method: str,
    params: dict[str, object],
    *,
    key: str | None = DOCS_EXAMPLE_API_KEY,
    secret: str = DOCS_EXAMPLE_API_SECRET,
    timestamp: int | None = None,
) -> requests.Response:
    """A SIGNED /fapi/v1/order request, parameters in the body for POST and in the query for GET."""
    query = urlencode({**params, "timestamp": timestamp or int(time.time() * 1000)})
    sent = f"{query}&signature={hmac.new(secret.encode(), query.encode(), hashlib.sha256).hexdigest()}"
    headers = {"X-MBX-APIKEY": key} if key else {}
    if method == "POST":
        return requests.post(f"{url}/fapi/v1/order", data=sent, headers=headers, timeout=30)
    return requests.get(f"{url}/fapi/v1/order?{sent}", headers=headers, timeout=30)


def market(client_order_id: str, quantity: str = "0.250", symbol: str = "ETHUSDT", **extra: object) -> dict:
    return dict(symbol=symbol, side="BUY", type="MARKET", quantity=quantity, newClientOrderId=client_order_id) | extra


def error_code(response: requests.Response) -> int:
    assert response.status_code in (400, 401), response.text
    return response.json()["code"]


def test_market_orders_fill_at_the_close_of_the_last_closed_minute(start_replay):
    server = start_replay()
    placed = signed(server.url, "POST", market("fill-1", newOrderRespType="RESULT"))
    assert placed.status_code == 200, placed.text
    order = placed.json()
    assert (order["status"], order["type"], order["side"], order["clientOrderId"]) == (
        "FILLED", "MARKET", "BUY", "fill-1"
    )
    assert order["origQty"] == order["executedQty"] == order["cumQty"] == "0.250"
    (candle,) = rows(server.url, symbol="ETHUSDT", interval="1m", endTime=order["updateTime"] - MINUTE, limit=1)
    assert candle[6] < order["updateTime"] <= candle[6] + MINUTE  # the newest closed candle at fill time
    assert order["avgPrice"] == candle[4]
    assert Decimal(order["cumQuote"]) == Decimal(candle[4]) * Decimal("0.250")
    by_client_id = signed(server.url, "GET", dict(symbol="ETHUSDT", origClientOrderId="fill-1")).json()
    by_order_id = signed(server.url, "GET", dict(symbol="ETHUSDT", orderId=order["orderId"])).json()
    as_queried = {name: value for name, value in order.items() if name != "cumQty"} | {"time": order["updateTime"]}
    assert by_client_id == by_order_id == as_queried
    acknowledged = signed(server.url, "POST", market("fill-2")).json()  # ACK, the default: answered before the fill
    assert (acknowledged["status"], acknowledged["executedQty"]) == ("NEW", "0.000")
    assert signed(server.url, "GET", dict(symbol="ETHUSDT", origClientOrderId="fill-2")).json()["status"] == "FILLED"
    stats = server.stats()
    assert (stats["orders_placed"], stats["order_requests"], stats["order_queries"]) == (2, 2, 3)
    assert server.reset()["orders_placed"] == 0
    assert error_code(signed(server.url, "GET", dict(symbol="ETHUSDT", origClientOrderId="fill-1"))) == -2013


def test_order_parameters_get_binance_errors(replay_server):
    url, tag = replay_server.url, f"e{time.time_ns()}"
    assert signed(url, "POST", market(f"{tag}-dup")).status_code == 200
    duplicate = signed(url, "POST", market(f"{tag}-dup"))
    assert duplicate.json() == {"code": -4116, "msg": "ClientOrderId is duplicated."}
    cases = [
        (market(f"{tag}-1", "0.0005", symbol="BTCUSDT"), -1111),  # off the 0.001 lot step, below minQty
        (market(f"{tag}-2", "0"), -4003),
        (market(f"{tag}-3", "lots"), -1100),
        (market(f"{tag}-4", "200000"), -4005),
        (market(f"{tag}-5", side="HOLD"), -1117),
        (market(f"{tag}-6", type="LIMIT"), -1014),
        (market(f"{tag}-7", type="ICEBERG"), -1116),
        (market(f"{tag}-8", symbol="NOSUCHUSDT"), -1121),
        (market("bad id!"), -4015),
        (market("x" * 37), -4015),
        (market(f"{tag}-9", newOrderRespType="FULL"), -1136),
        (market(f"{tag}-10", reduceOnly="maybe"), -1130),
        ({k: v for k, v in market(f"{tag}-11").items() if k != "quantity"}, -1102),
    ]
    for params, code in cases:
        assert error_code(signed(url, "POST", params)) == code, params
    missing = signed(url, "GET", dict(symbol="ETHUSDT", origClientOrderId=f"{tag}-1"))
    assert missing.json() == {"code": -2013, "msg": "Order does not exist."}
    assert error_code(signed(url, "GET", dict(symbol="BTCUSDT", origClientOrderId=f"{tag}-dup"))) == -2013
    assert error_code(signed(url, "GET", dict(symbol="ETHUSDT"))) == -1102


def test_signed_requests_are_checked_like_binance(replay_server):
    url, now = replay_server.url, int(time.time() * 1000)
    lookup = dict(symbol="ETHUSDT", origClientOrderId="nobody")  # -2013 once the request is accepted
    assert error_code(signed(url, "GET", lookup)) == -2013
    for key in (None, "f" * 64):
        refused = signed(url, "GET", lookup, key=key)
        assert refused.status_code == 401
        assert refused.json() == {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."}
    forged = signed(url, "GET", lookup, secret="0" * 64)
    assert forged.json() == {"code": -1022, "msg": "Signature for this request is not valid."}
    assert error_code(signed(url, "GET", lookup, timestamp=now - 10_000)) == -1021
    assert error_code(signed(url, "GET", lookup | {"recvWindow": 20_000}, timestamp=now - 10_000)) == -2013
    ahead = signed(url, "GET", lookup, timestamp=now + 5_000).json()
    assert ahead == {"code": -1021, "msg": "Timestamp for this request was 1000ms ahead of the server's time."}
    query = urlencode(lookup | {"timestamp": int(time.time() * 1000)})
    signature = hmac.new(DOCS_EXAMPLE_API_SECRET.encode(), query.encode(), hashlib.sha256).hexdigest()
    headers = {"X-MBX-APIKEY": DOCS_EXAMPLE_API_KEY}
    upper = requests.get(f"{url}/fapi/v1/order?{query}&signature={signature.upper()}", headers=headers, timeout=30)
    assert error_code(upper) == -2013  # the signature is not case-sensitive
    unsigned = requests.get(f"{url}/fapi/v1/order?{query}", headers=headers, timeout=30)
    assert error_code(unsigned) == -1102
    # Part in the query string, part in the body: the signature covers both, concatenated as sent.
    head = "symbol=BTCUSDT&side=BUY&type=MARKET"
    tail = f"quantity=0.001&newClientOrderId=mixed-{time.time_ns()}&timestamp={int(time.time() * 1000)}"
    signature = hmac.new(DOCS_EXAMPLE_API_SECRET.encode(), (head + tail).encode(), hashlib.sha256).hexdigest()
    mixed = requests.post(f"{url}/fapi/v1/order?{head}", data=f"{tail}&signature={signature}", headers=headers,
                          timeout=30)
    assert mixed.status_code == 200 and mixed.json()["status"] == "NEW"


def test_the_published_signing_example_passes_the_signature_check(replay_server):
    vector = load_json("binance/api_samples/binance_docs/hmac_signing_vector_fapi_order.json")
    headers = {"X-MBX-APIKEY": vector["apiKey"]}
    sent = f"{vector['totalParams']}&signature={vector['signature']}"
    stale = requests.post(f"{replay_server.url}/fapi/v1/order", data=sent, headers=headers, timeout=30)
    # The signature is accepted; only the 2020 timestamp is refused.
    assert stale.json() == {"code": -1021, "msg": "Timestamp for this request is outside of the recvWindow."}
    tampered = requests.post(
        f"{replay_server.url}/fapi/v1/order", data=sent.replace("price=9000", "price=9001"), headers=headers, timeout=30
    )
    assert error_code(tampered) == -1022


def test_order_faults_count_order_requests_and_queries_separately(start_replay):
    server = start_replay(faults="placed_503:at=1:on=order,503:at=2:on=order,margin:at=3,lag:at=3:on=query")
    assert statuses(server.url, 2) == [200, 200]  # klines requests are not counted by order rules
    unknown = {"code": -1000, "msg": "Unknown error, please check your request or try again later."}
    first = signed(server.url, "POST", market("fault-1"))
    assert (first.status_code, first.json()) == (503, unknown)
    assert signed(server.url, "GET", dict(symbol="ETHUSDT", origClientOrderId="fault-1")).status_code == 200
    second = signed(server.url, "POST", market("fault-2"))
    assert (second.status_code, second.json()) == (503, unknown)
    assert error_code(signed(server.url, "GET", dict(symbol="ETHUSDT", origClientOrderId="fault-2"))) == -2013
    margin = signed(server.url, "POST", market("fault-3"))
    assert margin.json() == {"code": -2019, "msg": "Margin is insufficient."}
    lagging = signed(server.url, "GET", dict(symbol="ETHUSDT", origClientOrderId="fault-1"))
    assert error_code(lagging) == -2013  # placed, but the query does not show it yet
    assert signed(server.url, "GET", dict(symbol="ETHUSDT", origClientOrderId="fault-1")).status_code == 200
    stats = server.stats()
    assert stats["faults_injected"] == {"order:placed_503": 1, "order:503": 1, "order:margin": 1, "query:lag": 1}
    assert (stats["orders_placed"], stats["order_requests"], stats["order_queries"]) == (1, 3, 4)
    assert stats["klines_requests"] == 2
