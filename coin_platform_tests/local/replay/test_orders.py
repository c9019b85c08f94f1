"""The replay's signed order endpoints over real HTTP: Binance's SIGNED checks, MARKET fills, order faults.

Everything here goes through the `coin replay serve` process the fixtures
start, so what is tested is what a client sees on the wire.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from decimal import Decimal
from urllib.parse import urlencode

import requests

from coin_platform.local.replay import DOCS_EXAMPLE_API_KEY, DOCS_EXAMPLE_API_SECRET
from coin_platform_tests.local.replay.wire import MINUTE, rows, statuses
from coin_platform_tests.shared_data import load_json


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
