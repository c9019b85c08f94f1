"""The replay's synthetic candles over real HTTP: deterministic, exact aggregates, market-like.

Everything here goes through the `coin replay serve` process the fixtures
start, so what is tested is what a client sees on the wire.
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import polars as pl
import pytest

from coin_platform.market.klines import OHLCV_COLUMNS, parse_kline_rows, resample_ohlcv
from coin_platform_tests.local.replay.wire import DAY, DAY_START, HOUR, MINUTE, STEP_MS, get, rows


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
