"""The klines and funding client against the replay server: pagination, closed candles, funding times
that have passed, symbols, refusals.

The retry policy, 418/429 and weight windows it shares with the broker are tested in
coin_platform_tests/binance/.
"""

import datetime as dt
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import polars as pl
import pytest

from coin_platform.binance.errors import BinanceAPIError, BinanceUnavailableError, InvalidSymbolError
from coin_platform.core.intervals import UnknownIntervalError
from coin_platform.market.client import BinanceFuturesClient
from coin_platform.market.funding import FUNDING_SCHEMA
from coin_platform.market.klines import kline_request_weight

START = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
START_MS = int(START.timestamp() * 1000)


def _no_sleep(_seconds: float) -> None:
    """Backoff delays are behaviour we count, not time we spend."""


def _client(url: str, **options) -> BinanceFuturesClient:
    return BinanceFuturesClient(url, sleep=_no_sleep, **options)


@pytest.mark.parametrize(
    ("limit", "weight"), [(1, 1), (99, 1), (100, 2), (499, 2), (500, 5), (1000, 5), (1001, 10), (1500, 10)]
)
def test_kline_weights_follow_binances_table(limit, weight):
    assert kline_request_weight(limit) == weight


def test_pages_through_days_without_losing_or_repeating_a_candle(replay_server):
    with _client(replay_server.url) as client:
        frame = client.fetch_klines("BTCUSDT", "1m", START, START + dt.timedelta(days=3))
        assert client.stats["kline_requests"] == 3  # 4320 candles, 1500 per page
        by_day = pl.concat(
            client.fetch_klines(
                "BTCUSDT", "1m", START + dt.timedelta(days=d), START + dt.timedelta(days=d + 1)
            )
            for d in range(3)
        )
    assert frame.height == 3 * 1440
    assert frame["open_time"].is_unique().all() and frame["open_time"].is_sorted()
    assert frame["open_time"].min() == START
    assert frame["open_time"].max() == START + dt.timedelta(days=3, minutes=-1)
    assert frame.equals(by_day)  # the same candles whatever the page boundaries


def test_unaligned_bounds_cover_exactly_the_candles_opening_inside(replay_server):
    with _client(replay_server.url) as client:
        frame = client.fetch_klines(
            "ETHUSDT", "15m", START + dt.timedelta(minutes=7), START + dt.timedelta(hours=1, minutes=1)
        )
    assert frame["open_time"].to_list() == [START + dt.timedelta(minutes=m) for m in (15, 30, 45, 60)]


def test_the_candle_still_forming_is_never_returned(replay_server):
    now = dt.datetime.now(dt.UTC)
    with _client(replay_server.url) as client:
        client.sync_clock()
        frame = client.fetch_klines(
            "SOLUSDT", "1m", now - dt.timedelta(minutes=30), now + dt.timedelta(hours=1)
        )
    after = dt.datetime.now(dt.UTC)
    assert frame.height in (29, 30, 31)
    assert (frame["close_time"] < after).all()
    assert frame["open_time"].max() >= now.replace(second=0, microsecond=0) - dt.timedelta(minutes=2)


def test_exchange_info_sets_the_limit_and_symbols_are_validated(start_replay):
    server = start_replay(weight_limit=1234)
    with _client(server.url) as client:
        info = client.exchange_info()
        assert client.limiter.limit == 1234
        assert "BTCUSDT" in client.trading_symbols()
        assert client.stats["requests"] == 1  # trading_symbols reused the answer
        with pytest.raises(InvalidSymbolError, match="NOPEUSDT"):
            client.validate_symbols(["BTCUSDT", "NOPEUSDT"])
    assert info["rateLimits"][0]["rateLimitType"] == "REQUEST_WEIGHT"


def test_an_invalid_symbol_is_a_clear_error_and_not_retried(start_replay):
    server = start_replay()
    with _client(server.url) as client:
        with pytest.raises(InvalidSymbolError) as raised:
            client.fetch_klines("NOPEUSDT", "1m", START, START + dt.timedelta(hours=1))
    assert raised.value.code == -1121
    assert "Invalid symbol." in str(raised.value) and "HTTP 400" in str(raised.value)
    assert server.stats()["klines_requests"] == 1


def test_other_client_errors_stop_at_once(start_replay):
    server = start_replay()
    with _client(server.url) as client:
        with pytest.raises(BinanceAPIError) as raised:
            client.klines_page("BTCUSDT", "1m", 0, 10**13, limit=5000)
        with pytest.raises(UnknownIntervalError, match="7m"):
            client.fetch_klines("BTCUSDT", "7m", START, START + dt.timedelta(hours=1))
    assert raised.value.code == -1130
    assert server.stats()["klines_requests"] == 1


def test_the_last_price_is_the_close_of_the_forming_minute(replay_server):
    with BinanceFuturesClient(replay_server.url) as client:
        client.sync_clock()
        price, at = client.last_price("BTCUSDT")
        at_ms = int(at.timestamp() * 1000)
        minute = at_ms - at_ms % 60_000
        page = client.klines_page("BTCUSDT", "1m", minute, minute + 59_999, 1)
        assert abs(at_ms - client.limiter.now_ms()) < 5_000
    assert page.height == 1 and price == page["close"][0] > 0


def test_funding_pages_through_years_without_losing_or_repeating_a_time(replay_server):
    start, end = dt.datetime(2022, 1, 1, tzinfo=dt.UTC), dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    with _client(replay_server.url) as client:
        frame = client.fetch_funding_rates("BTCUSDT", start, end)
        assert client.stats["funding_requests"] == 3  # 2,190 funding times, 1,000 per page
        by_year = pl.concat(
            client.fetch_funding_rates("BTCUSDT", dt.datetime(year, 1, 1, tzinfo=dt.UTC),
                                       dt.datetime(year + 1, 1, 1, tzinfo=dt.UTC))
            for year in (2022, 2023)
        )
    assert frame.schema == pl.Schema(FUNDING_SCHEMA)
    assert frame.height == 730 * 3 and frame["funding_time"].is_unique().all() and frame["funding_time"].is_sorted()
    assert frame["funding_time"].min() >= start and frame["funding_time"].max() < end
    assert frame.equals(by_year)  # the same rates whatever the page boundaries


def test_only_funding_times_that_have_passed_are_returned(replay_server):
    now = dt.datetime.now(dt.UTC)
    with _client(replay_server.url) as client:
        client.sync_clock()
        frame = client.fetch_funding_rates("ETHUSDT", now - dt.timedelta(days=2), now + dt.timedelta(days=2))
    assert frame.height in (6, 7)
    assert frame["funding_time"].max() <= dt.datetime.now(dt.UTC)
    assert frame["funding_time"].min() >= now - dt.timedelta(days=2)


def test_funding_for_an_invalid_symbol_is_a_clear_error_and_not_retried(start_replay):
    server = start_replay()
    with _client(server.url) as client:
        with pytest.raises(InvalidSymbolError, match="Invalid symbol"):
            client.fetch_funding_rates("NOPEUSDT", START, START + dt.timedelta(days=1))
    assert server.stats()["funding_requests"] == 1


@contextmanager
def _answering(body: object) -> Iterator[str]:
    """A loopback server answering every GET with `body`: answers the replay would never give."""

    class Fixed(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Fixed)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("items", "problem"),
    [
        ([{"symbol": "ETHUSDT", "fundingTime": START_MS, "fundingRate": "0.0001"}], "is not a BTCUSDT funding time"),
        ([{"symbol": "BTCUSDT", "fundingTime": START_MS - 1, "fundingRate": "0.0001"}], "within the"),
        ([{"symbol": "BTCUSDT", "fundingTime": START_MS + 9, "fundingRate": "0.0001"},
          {"symbol": "BTCUSDT", "fundingTime": START_MS + 9, "fundingRate": "0.0001"}], "funding item 1"),
        ([{"symbol": "BTCUSDT", "fundingTime": START_MS, "fundingRate": "x"}], "field 'fundingRate'"),
    ],
)
def test_an_unusable_funding_answer_is_retried_then_named_and_never_returned(items, problem):
    with _answering(items) as url, _client(url, max_retries=1) as client:
        with pytest.raises(BinanceUnavailableError, match=problem):
            client.fetch_funding_rates("BTCUSDT", START, START + dt.timedelta(days=1))
        assert client.stats["requests"] == 2
