"""The replay's klines and exchangeInfo over real HTTP: Binance's windows, parameters and errors.

Everything here goes through the `coin replay serve` process the fixtures
start, so what is tested is what a client sees on the wire.
"""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from coin_platform.market.klines import OHLCV_COLUMNS, parse_kline_rows, resample_ohlcv
from coin_platform_tests.local.replay.wire import DAY_START, LISTING, MINUTE, WEIGHT, get, rows, server_time


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
