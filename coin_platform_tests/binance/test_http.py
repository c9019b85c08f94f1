"""The one Binance HTTP layer against the replay server and loopback stubs: retries with jitter,
Retry-After on 429, 418 stops, weight windows, signing, redirects; and that the klines client and
the order broker both go through it."""

import datetime as dt
import random
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pydantic import SecretStr

from coin_platform.binance.errors import BinanceUnavailableError, IPBannedError, RedirectRefusedError
from coin_platform.binance.http import BinanceHttp, Credentials, RetryPolicy, sign
from coin_platform.binance.weights import WeightLimiter
from coin_platform.local.replay import DOCS_EXAMPLE_API_KEY, DOCS_EXAMPLE_API_SECRET, ReplayServer
from coin_platform.market.client import BinanceFuturesClient
from coin_platform.market.klines import parse_kline_rows
from coin_platform.trading.binance import BinanceFuturesBroker
from coin_platform.trading.orders import OrderOutcomeUnknown, OrderRequest
from coin_platform_tests.clock import ControlledClock
from coin_platform_tests.shared_data import load_json

START = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
START_MS = int(START.timestamp() * 1000)
CREDENTIALS = Credentials(SecretStr(DOCS_EXAMPLE_API_KEY), SecretStr(DOCS_EXAMPLE_API_SECRET))


def _no_sleep(_seconds: float) -> None:
    """Backoff delays are behaviour we count, not time we spend."""


def _client(url: str, **options) -> BinanceFuturesClient:
    return BinanceFuturesClient(url, sleep=_no_sleep, **options)


def _klines(http: BinanceHttp):
    params = {"symbol": "BTCUSDT", "interval": "1m", "startTime": START_MS, "limit": 10}
    return http.get("/fapi/v1/klines", params, 1, parse_kline_rows)


def test_signing_reproduces_the_published_example():
    vector = load_json("binance/api_samples/binance_docs/hmac_signing_vector_fapi_order.json")
    assert sign(vector["secretKey"], vector["totalParams"]) == vector["signature"]


def test_credentials_never_show_in_reprs():
    http = BinanceHttp("http://127.0.0.1:1")
    for text in (repr(CREDENTIALS), str(CREDENTIALS), repr(http), repr(vars(http))):
        assert DOCS_EXAMPLE_API_KEY not in text and DOCS_EXAMPLE_API_SECRET not in text


def test_server_errors_are_retried_a_bounded_number_of_times(start_replay):
    server = start_replay(faults="503:first=100")
    with _client(server.url, max_retries=3) as client:
        with pytest.raises(BinanceUnavailableError, match="failed 4 times; last problem: HTTP 503"):
            client.fetch_klines("BTCUSDT", "1h", START, START + dt.timedelta(days=1))
        assert client.stats["retries"] == 3
    assert server.stats()["klines_requests"] == 4


@pytest.mark.parametrize("faults", ["truncate:at=1", "malformed:at=1+2", "500:at=1,502:at=2,504:at=3", "429:first=2"])
def test_transient_faults_recover_with_the_same_candles(replay_server, start_replay, faults):
    server = start_replay(faults=faults)
    with _client(server.url) as client:
        frame = client.fetch_klines("ADAUSDT", "1m", START, START + dt.timedelta(days=2))
        recovered = client.stats
    with _client(replay_server.url) as client:
        expected = client.fetch_klines("ADAUSDT", "1m", START, START + dt.timedelta(days=2))
    assert frame.equals(expected)
    assert recovered["retries"] + recovered["rate_limited"] >= 1


def test_a_418_ban_stops_at_once_with_a_clear_error(start_replay):
    server = start_replay(faults="418:first=100", ban_seconds=90)
    with _client(server.url) as client:
        with pytest.raises(IPBannedError, match=r"banned this IP for 90 s \(HTTP 418"):
            client.fetch_klines("BTCUSDT", "1m", START, START + dt.timedelta(days=1))
        assert client.stats["requests"] == 1
    assert server.stats()["klines_requests"] == 1


def test_the_limiter_waits_for_the_next_window_instead_of_provoking_a_429():
    clock = ControlledClock(dt.datetime(2024, 3, 20, 0, 0, 30, tzinfo=dt.UTC).timestamp())
    with ReplayServer(port=0, weight_limit=50, clock=clock) as server:
        limiter = WeightLimiter(fraction=1.0, clock=clock, sleep=clock.sleep)
        with BinanceFuturesClient(server.url, limiter=limiter, sleep=clock.sleep) as client:
            client.exchange_info()  # adopts the limit of 50 (weight 1)
            frame = client.fetch_klines("BTCUSDT", "1m", START, START + dt.timedelta(days=10))
        stats = server.stats()
    assert frame.height == 10 * 1440  # 10 pages: needs three windows
    assert sum(w["rejected_429"] for w in stats["windows"]) == 0
    assert [w["weight"] for w in stats["windows"]] == [41, 50, 5]  # the last page holds 900
    assert len(clock.sleeps) == 2 and client.stats["rate_limited"] == 0


def test_without_the_limiter_a_429_is_waited_out_and_nothing_is_lost():
    clock = ControlledClock(dt.datetime(2024, 3, 20, 0, 0, 30, tzinfo=dt.UTC).timestamp())
    with ReplayServer(port=0, weight_limit=50, clock=clock) as server:
        limiter = WeightLimiter(limit=50, enabled=False, clock=clock, sleep=clock.sleep)
        with BinanceFuturesClient(server.url, limiter=limiter, sleep=clock.sleep) as client:
            frame = client.fetch_klines("BTCUSDT", "1m", START, START + dt.timedelta(days=8))
        stats = server.stats()
    assert frame.height == 8 * 1440 and frame["open_time"].is_unique().all()
    assert client.stats["rate_limited"] == 1
    assert sum(w["rejected_429"] for w in stats["windows"]) == 1
    assert sum(w["rejected_418"] for w in stats["windows"]) == 0
    assert clock.sleeps == [30.0]  # Retry-After: the rest of the window


LISTING = dt.datetime(2017, 1, 1, tzinfo=dt.UTC)  # the replay's first funding time


def _funding_since_listing(server_url: str, clock: ControlledClock, **limiter_options):
    """Seven years of BTCUSDT funding (8 pages of 1,000) under a fundingRate limit of 3 per 5 minutes."""
    limiter = WeightLimiter(fraction=1.0, clock=clock, sleep=clock.sleep, **limiter_options)
    with BinanceFuturesClient(server_url, limiter=limiter, sleep=clock.sleep, funding_limit=3) as client:
        return client.fetch_funding_rates("BTCUSDT", LISTING, START), client.stats


def test_an_endpoints_own_limit_waits_for_its_window_instead_of_provoking_a_429():
    clock = ControlledClock(dt.datetime(2024, 3, 20, 0, 0, 30, tzinfo=dt.UTC).timestamp())
    with ReplayServer(port=0, funding_limit=3, clock=clock) as server:
        frame, stats = _funding_since_listing(server.url, clock)
        windows = server.stats()["funding_windows"]
    assert frame.height == (START - LISTING).days * 3 and frame["funding_time"].is_unique().all()
    assert stats["funding_requests"] == 8 and stats["rate_limited"] == 0 and stats["weight"] == 0
    assert [(w["weight"], w["rejected_429"]) for w in windows] == [(3, 0), (3, 0), (2, 0)]
    assert len(clock.sleeps) == 2  # into the next 5-minute windows


def test_without_the_limiter_an_endpoints_own_429_is_waited_out_and_nothing_is_lost():
    clock = ControlledClock(dt.datetime(2024, 3, 20, 0, 0, 30, tzinfo=dt.UTC).timestamp())
    with ReplayServer(port=0, clock=clock) as unlimited:
        expected, _ = _funding_since_listing(unlimited.url, clock, enabled=False)
    with ReplayServer(port=0, funding_limit=3, clock=clock) as server:
        frame, stats = _funding_since_listing(server.url, clock, enabled=False)
        windows = server.stats()["funding_windows"]
    assert frame.equals(expected)
    assert stats["rate_limited"] == 2 and [w["rejected_429"] for w in windows] == [1, 1, 0]
    assert clock.sleeps == [270.0, 300.0]  # Retry-After: the rest of each 5-minute window


def test_retries_wait_with_full_jitter_under_a_growing_capped_ceiling(start_replay):
    server = start_replay(faults="503:first=5")
    sleeps: list[float] = []
    policy = RetryPolicy(max_retries=5, backoff_base_s=0.5, backoff_cap_s=2.0)
    with BinanceHttp(server.url, policy=policy, sleep=sleeps.append, rng=random.Random(7)) as http:
        assert _klines(http).height == 10
    ceilings = [0.5, 1.0, 2.0, 2.0, 2.0]
    assert len(sleeps) == 5 and all(0 <= s <= c for s, c in zip(sleeps, ceilings, strict=True))
    assert len(set(sleeps)) == 5  # drawn, not fixed
    assert server.stats()["klines_requests"] == 6


def test_an_order_post_meeting_a_5xx_is_never_resent_by_the_layer(start_replay):
    server = start_replay(faults="503:first=5:on=order")
    with BinanceHttp(server.url, sleep=_no_sleep) as http:
        http.sync_clock()
        params = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01", "newClientOrderId": "x"}
        with pytest.raises(BinanceUnavailableError, match="outcome unknown") as unknown:
            http.signed_request("POST", "/fapi/v1/order", params, CREDENTIALS, weight=0, decode=dict)
    assert unknown.value.problem.startswith("HTTP 503")
    assert server.stats()["order_requests"] == 1


class _Redirect(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        self.send_response(307)
        self.send_header("Location", "http://127.0.0.1:9/elsewhere")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_a_signed_request_never_follows_a_redirect_and_names_only_the_status():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with BinanceHttp(f"http://127.0.0.1:{server.server_address[1]}", sleep=_no_sleep) as http:
            with pytest.raises(RedirectRefusedError) as refused:
                http.signed_request("GET", "/fapi/v1/order", {"symbol": "BTCUSDT"}, CREDENTIALS, weight=1, decode=dict)
    finally:
        server.shutdown()
        server.server_close()
    message = str(refused.value)
    assert "HTTP 307" in message and "redirect" in message
    for leaked in ("signature", "timestamp", "elsewhere", DOCS_EXAMPLE_API_KEY):
        assert leaked not in message


def _order(client_order_id: str) -> OrderRequest:
    return OrderRequest(
        client_order_id=client_order_id,
        symbol="BTCUSDT",
        quantity=0.01,
        side="buy",
        reduce_only=False,
        reference_price=60_000.0,
    )


def test_the_klines_client_and_the_broker_share_one_retry_policy(start_replay):
    """A 429 with Retry-After on klines and on an order query is honoured the same way; a 418 stops both."""
    server = start_replay(faults="429:at=1:on=klines,429:at=1:on=query")
    sleeps: list[float] = []
    client = BinanceFuturesClient(server.url, sleep=sleeps.append)
    trader = BinanceFuturesBroker(
        server.url, DOCS_EXAMPLE_API_KEY, DOCS_EXAMPLE_API_SECRET, allow_test_endpoint=True, sleep=sleeps.append
    )
    with client, trader:
        assert client.klines_page("BTCUSDT", "1m", START_MS, START_MS + 600_000, 10).height == 10
        assert trader.lookup(_order("dec-shared")) is None  # -2013 after the wait: nothing placed
        assert sleeps == [1.0, 1.0]  # both waited the exchange's Retry-After: 1
        for limiter in (client.limiter, trader._http.limiter):
            assert limiter.fraction == pytest.approx(0.95 * 0.9)  # and both slowed their limiter down
        assert server.stats()["klines_requests"] == 2 and server.stats()["order_queries"] == 2

        server.set_faults("418:at=1:on=klines,418:at=1:on=query")
        with pytest.raises(IPBannedError):
            client.klines_page("BTCUSDT", "1m", START_MS, START_MS + 600_000, 10)
        with pytest.raises(OrderOutcomeUnknown, match="HTTP 418"):
            trader.lookup(_order("dec-shared"))
    assert sleeps == [1.0, 1.0]  # a ban is not waited out or retried by either
    assert server.stats()["klines_requests"] == 3 and server.stats()["order_queries"] == 3
