"""The Binance USD-M broker against the replay server's signed order endpoints, over real HTTP.

Each fault a test plans is one the exchange really produces; the server's stats count the orders it
placed, so "placed exactly once" is checked on the exchange's side, not the broker's.
"""

from __future__ import annotations

import logging
import threading
import time
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from coin_platform.binance.http import API_KEY_HEADER, sign
from coin_platform.binance.weights import WeightLimiter
from coin_platform.defs.resources import build_resources
from coin_platform.local.replay import DOCS_EXAMPLE_API_KEY, DOCS_EXAMPLE_API_SECRET
from coin_platform.settings import PROJECT_ROOT, load_settings
from coin_platform.trading.binance import (
    MISSING_KEYS,
    BinanceFuturesBroker,
    TradingConfigError,
    order_endpoint,
)
from coin_platform.trading.orders import BrokerRejected, OrderOutcomeUnknown, OrderRequest

MINUTE = 60_000
WRONG_SECRET = "0" * 64
WRONG_KEY = "f" * 64


def broker(url: str, key: str = DOCS_EXAMPLE_API_KEY, secret: str = DOCS_EXAMPLE_API_SECRET, **options):
    options = {"allow_test_endpoint": True, "backoff_base_s": 0.01, "timeout_s": 5.0, **options}
    return BinanceFuturesBroker(url, key, secret, **options)


def buy(client_order_id: str, quantity: float = 0.0123456, symbol: str = "BTCUSDT", **fields) -> OrderRequest:
    values = dict(side="buy", reduce_only=False, reference_price=60_000.0) | fields
    return OrderRequest(client_order_id=client_order_id, symbol=symbol, quantity=quantity, **values)


def orders(server) -> tuple[int, int]:
    """(orders the exchange placed, order placements it was sent)."""
    stats = server.stats()
    return stats["orders_placed"], stats["order_requests"]


def stored_order(url: str, symbol: str, client_order_id: str) -> dict:
    query = f"symbol={symbol}&origClientOrderId={client_order_id}&timestamp={int(time.time() * 1000)}"
    response = requests.get(
        f"{url}/fapi/v1/order?{query}&signature={sign(DOCS_EXAMPLE_API_SECRET, query)}",
        headers={"X-MBX-APIKEY": DOCS_EXAMPLE_API_KEY},
        timeout=5,
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_market_orders_fill_at_the_last_closed_close_with_the_quantity_rounded_down(start_replay):
    server = start_replay()
    with broker(server.url, commission_rate=0.0004) as trader:
        btc = trader.submit(buy("dec-btc", 0.0123456))
        sol = trader.submit(buy("dec-sol", 2.99, symbol="SOLUSDT", side="sell", reduce_only=True))
    assert (btc.status, btc.broker, btc.existing, btc.client_order_id) == ("FILLED", "binance", False, "dec-btc")
    for result, symbol, quantity in ((btc, "BTCUSDT", 0.012), (sol, "SOLUSDT", 2.0)):  # steps 0.001 and 1
        (fill,) = result.fills
        stored = stored_order(server.url, symbol, result.client_order_id)
        assert str(stored["orderId"]) == result.exchange_order_id and stored["status"] == "FILLED"
        assert fill.quantity == quantity and stored["executedQty"] == stored["origQty"]
        fill_ms = int(fill.time.timestamp() * 1000)
        assert fill_ms == stored["updateTime"]
        (candle,) = requests.get(
            f"{server.url}/fapi/v1/klines",
            params=dict(symbol=symbol, interval="1m", endTime=fill_ms - MINUTE, limit=1),
            timeout=5,
        ).json()
        close, close_time = candle[4], candle[6]
        assert close_time < fill_ms <= close_time + MINUTE  # the last candle closed when the order filled
        assert fill.price == float(close) and result.average_price == float(close)
        assert fill.fee == pytest.approx(0.0004 * float(Decimal(close) * Decimal(str(quantity))), rel=1e-12)
    assert stored_order(server.url, "SOLUSDT", "dec-sol")["side"] == "SELL"
    assert stored_order(server.url, "SOLUSDT", "dec-sol")["reduceOnly"] is True
    assert orders(server) == (2, 2)


def test_a_quantity_below_the_minimum_is_refused_before_sending(start_replay):
    server = start_replay()
    with broker(server.url) as trader, pytest.raises(BrokerRejected) as refused:
        trader.submit(buy("dec-tiny", 0.00099))
    message = str(refused.value)
    assert "BTCUSDT quantity 0.00099 rounds down to 0" in message
    assert "stepSize 0.001" in message and "minQty 0.001" in message and "nothing was sent" in message
    with broker(server.url) as trader, pytest.raises(BrokerRejected, match="NOSUCHUSDT is not listed") as unlisted:
        trader.submit(buy("dec-unlisted", symbol="NOSUCHUSDT"))
    assert unlisted.value.code == -1121
    assert orders(server) == (0, 0) and server.stats()["order_queries"] == 0


def test_a_503_after_placing_is_resolved_by_the_query_and_not_resent(start_replay):
    server = start_replay(faults="placed_503:at=1:on=order")
    with broker(server.url) as trader:
        result = trader.submit(buy("dec-lost-reply"))
    assert result.status == "FILLED" and result.filled_quantity == 0.012 and not result.existing
    assert orders(server) == (1, 1)  # placed once, sent once
    assert server.stats()["order_queries"] == 2  # before sending, and after the 503


def test_a_503_before_placing_gets_one_resend(start_replay):
    server = start_replay(faults="503:at=1:on=order")
    with broker(server.url) as trader:
        result = trader.submit(buy("dec-not-placed"))
    assert result.status == "FILLED" and not result.existing
    assert orders(server) == (1, 2)  # sent twice, placed once
    assert server.stats()["faults_injected"] == {"order:503": 1}


@pytest.mark.parametrize("fault", ["slow:at=1:on=order:delay=1.5", "truncate:at=1:on=order"])
def test_a_timeout_or_a_cut_reply_after_placing_is_resolved_by_the_query(start_replay, fault):
    server = start_replay(faults=fault)
    with broker(server.url, timeout_s=0.5) as trader:
        result = trader.submit(buy("dec-no-reply"))
    assert result.status == "FILLED" and not result.existing
    assert orders(server) == (1, 1)


def test_resubmitting_a_client_order_id_returns_the_existing_order(start_replay):
    server = start_replay()
    with broker(server.url) as trader:
        first = trader.submit(buy("dec-twice"))
    with broker(server.url) as restarted:  # e.g. the order job runs again after a crash
        again = restarted.submit(buy("dec-twice"))
    assert again.existing and not first.existing
    assert (again.exchange_order_id, again.fills) == (first.exchange_order_id, first.fills)
    assert orders(server) == (1, 1)


def test_a_duplicate_id_refusal_is_resolved_by_the_query(start_replay):
    # The query after the 503 does not see the order yet, so the broker resends and gets -4116.
    server = start_replay(faults="placed_503:at=1:on=order,lag:at=2:on=query")
    with broker(server.url) as trader:
        result = trader.submit(buy("dec-dup"))
        assert result.status == "FILLED" and not result.existing  # this call placed it
        assert orders(server) == (1, 2)
        server.set_faults("lag:at=1:on=query")  # now the check before sending misses an older order
        again = trader.submit(buy("dec-dup"))
    assert again.existing and again.exchange_order_id == result.exchange_order_id
    assert orders(server) == (1, 3)


def test_a_duplicate_id_whose_query_is_refused_is_unknown_not_rejected(start_replay):
    server = start_replay()
    with broker(server.url) as trader:
        trader.submit(buy("dec-dup-ban"))
        server.set_faults("lag:at=1:on=query,418:at=2:on=query")
        with pytest.raises(OrderOutcomeUnknown, match="it may have been placed.*HTTP 418"):
            trader.submit(buy("dec-dup-ban"))  # -4116 says it exists; the ban hides which order it is
    assert orders(server) == (1, 2)


def test_an_outcome_still_unknown_after_the_queries_raises_and_is_found_later(start_replay):
    server = start_replay(faults="placed_503:at=1:on=order,503:at=2+3+4:on=query")
    with broker(server.url, max_queries=3) as trader:
        with pytest.raises(OrderOutcomeUnknown, match="dec-unknown.*3 queries failed"):
            trader.submit(buy("dec-unknown"))
        assert orders(server) == (1, 1)
        later = trader.submit(buy("dec-unknown"))
    assert later.existing and later.status == "FILLED"
    assert orders(server) == (1, 1)


def test_an_order_that_keeps_failing_unplaced_ends_unknown_after_bounded_sends(start_replay):
    server = start_replay(faults="502:every=1:on=order")
    with broker(server.url, max_sends=3) as trader, pytest.raises(OrderOutcomeUnknown, match="3 sends"):
        trader.submit(buy("dec-502"))
    assert orders(server) == (0, 3)


def test_a_margin_rejection_raises_with_its_code_and_is_not_retried(start_replay):
    server = start_replay(faults="margin:at=1")
    with broker(server.url) as trader, pytest.raises(BrokerRejected) as refused:
        trader.submit(buy("dec-margin"))
    assert refused.value.code == -2019 and "Margin is insufficient." in str(refused.value)
    assert orders(server) == (0, 1)


def test_a_429_is_waited_out_and_a_418_stops_at_once(start_replay):
    server = start_replay(faults="429:at=1:on=order,418:at=3:on=order")
    with broker(server.url) as trader:
        started = time.monotonic()
        assert trader.submit(buy("dec-429")).status == "FILLED"
        assert time.monotonic() - started >= 1.0  # Retry-After: 1
        assert orders(server) == (1, 2)
        with pytest.raises(BrokerRejected, match="banned, stopping without retrying") as banned:
            trader.submit(buy("dec-418"))
    assert banned.value.code == -1003
    assert orders(server) == (1, 3)


def test_a_clock_that_drifts_after_the_sync_is_measured_again(start_replay):
    server = start_replay()
    skew = [0.0]
    limiter = WeightLimiter(clock=lambda: time.time() + skew[0])
    with broker(server.url, limiter=limiter) as trader:
        trader.lot_size("BTCUSDT")  # loads exchangeInfo and syncs the clock
        skew[0] = -30.0  # now every timestamp is 30 s old: -1021 until the offset is measured again
        assert trader.submit(buy("dec-drift")).status == "FILLED"
    assert abs(limiter.server_offset_ms - 30_000) < 1_000
    assert orders(server) == (1, 1)


@pytest.mark.parametrize(
    ("key", "secret", "code", "hint"),
    [
        (DOCS_EXAMPLE_API_KEY, WRONG_SECRET, -1022, "check BINANCE_API_SECRET"),
        (WRONG_KEY, DOCS_EXAMPLE_API_SECRET, -2015, "check BINANCE_API_KEY"),
    ],
)
def test_wrong_credentials_are_refused_clearly_and_never_shown(start_replay, caplog, key, secret, code, hint):
    server = start_replay()
    caplog.set_level(logging.DEBUG)
    trader = broker(server.url, key, secret)
    with trader, pytest.raises(BrokerRejected) as refused:
        trader.submit(buy("dec-creds"))
    assert refused.value.code == code and hint in str(refused.value)
    assert orders(server) == (0, 0)  # stopped at the query before sending
    shown = [str(trader), repr(trader), repr(vars(trader)), str(refused.value), repr(refused.value), caplog.text]
    assert not any(value in text for value in (key, secret) for text in shown)


def test_secrets_stay_out_of_reprs_errors_and_logs(start_replay, caplog):
    server = start_replay(faults="placed_503:at=1:on=order,503:at=2+3:on=query")
    caplog.set_level(logging.DEBUG)
    trader = broker(server.url, max_queries=2)
    with trader, pytest.raises(OrderOutcomeUnknown) as unknown:
        trader.submit(buy("dec-secret"))
    assert "outcome unknown" in caplog.text
    with pytest.raises(TradingConfigError) as refused:
        BinanceFuturesBroker("https://fapi.binance.com", DOCS_EXAMPLE_API_KEY, DOCS_EXAMPLE_API_SECRET)
    shown = [str(trader), repr(trader), repr(vars(trader)), str(unknown.value), repr(unknown.value),
             str(refused.value), caplog.text]
    for secret in (DOCS_EXAMPLE_API_KEY, DOCS_EXAMPLE_API_SECRET):
        assert not any(secret in text for text in shown)


@pytest.mark.parametrize(("key", "secret"), [(None, None), ("key", None), (None, "secret"), ("", "secret")])
def test_no_keys_no_broker(key, secret):
    with pytest.raises(TradingConfigError, match=MISSING_KEYS):
        BinanceFuturesBroker("https://testnet.binancefuture.com", key, secret)


def test_a_non_testnet_url_without_live_trading_is_refused_before_any_request(start_replay):
    server = start_replay()
    server.reset()
    with pytest.raises(TradingConfigError, match="not the Binance testnet.*Set LIVE_TRADING=1"):
        BinanceFuturesBroker(server.url, DOCS_EXAMPLE_API_KEY, DOCS_EXAMPLE_API_SECRET)  # no allow_test_endpoint
    assert server.stats()["windows"] == []  # the server saw no request at all


@pytest.mark.parametrize(
    ("url", "allow_test_endpoint"),
    [
        ("https://fapi.binance.com", False),
        ("https://fapi.binance.com", True),  # the test flag admits loopback only
        ("http://testnet.binancefuture.com", False),
        ("https://testnet.binancefuture.com.example.org", False),
        ("https://testnet.binancefuture.com@fapi.binance.com", False),
        ("https://testnet.binancefuture.com/../x", False),
        ("http://10.0.0.5:8765", True),
    ],
)
def test_only_the_testnet_or_an_explicit_loopback_endpoint_trades_without_live_trading(url, allow_test_endpoint):
    with pytest.raises(TradingConfigError, match="LIVE_TRADING=1"):
        order_endpoint(url, live_trading=False, allow_test_endpoint=allow_test_endpoint)
    assert order_endpoint(url, live_trading=True) == url


def test_endpoints_that_need_no_live_trading():
    assert order_endpoint("https://testnet.binancefuture.com/", live_trading=False) == (
        "https://testnet.binancefuture.com"
    )
    for url in ("http://127.0.0.1:8765", "http://localhost:8765", "http://[::1]:8765"):
        assert order_endpoint(url, live_trading=False, allow_test_endpoint=True) == url
        with pytest.raises(TradingConfigError):
            order_endpoint(url, live_trading=False)


def test_the_order_job_broker_follows_the_environment(tmp_path):
    """The broker the order job gets from its resource: keys, BINANCE_ORDER_URL, LIVE_TRADING, replay mode."""
    config = tmp_path / "config.yaml"
    config.write_text(
        (PROJECT_ROOT / "config.yaml").read_text().replace("broker: paper", "broker: binance")
    )
    base = {"COIN_HOME": str(tmp_path), "COIN_CONFIG": str(config)}
    keys = {"BINANCE_API_KEY": DOCS_EXAMPLE_API_KEY, "BINANCE_API_SECRET": DOCS_EXAMPLE_API_SECRET}

    def broker(environ: dict[str, str]):
        resource = build_resources(load_settings(base | environ))["trading_store"]
        return resource.get_broker(resource.get_store(), lambda symbol, at: None)

    with pytest.raises(TradingConfigError, match=MISSING_KEYS):
        broker({})
    testnet = broker(keys)
    assert testnet.base_url == "https://testnet.binancefuture.com"
    assert testnet.commission_rate == load_settings(base).config.trading.fee_rate == 0.001
    for url in ("https://fapi.binance.com", "http://127.0.0.1:8765"):
        with pytest.raises(TradingConfigError, match="LIVE_TRADING=1"):
            broker(keys | {"BINANCE_ORDER_URL": url})
    replay = broker(keys | {"BINANCE_ORDER_URL": "http://127.0.0.1:8765", "MARKET_SOURCE": "replay"})
    assert replay.base_url == "http://127.0.0.1:8765"
    with pytest.raises(TradingConfigError, match="LIVE_TRADING=1"):  # replay mode does not open the live API
        broker(keys | {"BINANCE_ORDER_URL": "https://fapi.binance.com", "MARKET_SOURCE": "replay"})
    live = broker(keys | {"BINANCE_ORDER_URL": "https://fapi.binance.com", "LIVE_TRADING": "1"})
    assert live.base_url == "https://fapi.binance.com"


class _Recorder(BaseHTTPRequestHandler):
    """The host a redirect points to: records every request's path and whether it carried the API key."""

    seen: list[tuple[str, bool]]

    def _answer(self) -> None:
        type(self).seen.append((self.path, API_KEY_HEADER in self.headers))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


def _redirecting(market_url: str, target: str) -> type[BaseHTTPRequestHandler]:
    """An order endpoint that relays public calls to the replay server and answers 307 to `target` for orders."""

    class Redirecting(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            if self.path.startswith("/fapi/v1/order"):
                self.send_response(307)
                self.send_header("Location", f"{target}{self.path}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            relayed = requests.get(f"{market_url}{self.path}", timeout=5)
            self.send_response(relayed.status_code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(relayed.content)))
            self.end_headers()
            self.wfile.write(relayed.content)

        do_GET = do_POST = _answer

        def log_message(self, *args: object) -> None:
            pass

    return Redirecting


@pytest.fixture
def serve():
    """Start HTTP handlers on free loopback ports; every server is shut down at teardown."""
    servers: list[ThreadingHTTPServer] = []

    def start(handler: type[BaseHTTPRequestHandler]) -> str:
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_signed_requests_do_not_follow_redirects(replay_server, serve, caplog):
    caplog.set_level(logging.DEBUG)
    recorder = type("Recorder", (_Recorder,), {"seen": []})
    elsewhere = serve(recorder)
    endpoint = serve(_redirecting(replay_server.url, elsewhere))
    with broker(endpoint) as trader, pytest.raises(BrokerRejected) as refused:
        trader.submit(buy("dec-redirect"))
    assert recorder.seen == []  # neither the signed query nor the key reached the other host
    message = str(refused.value)
    assert "HTTP 307" in message and "redirect" in message
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("coin_platform"))
    for leaked in ("signature", "timestamp", "origClientOrderId=", elsewhere, DOCS_EXAMPLE_API_KEY):
        assert leaked not in message and leaked not in ours
