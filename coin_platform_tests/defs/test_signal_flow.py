"""Candle -> candidate -> Kafka -> trade run -> decision (recorded, published to Kafka) -> paper order.

Real components throughout: the replay server (prices), SeaweedFS (objects and
tansu's storage), tansu (Kafka), chDB (hot store, candidates), a DuckDB trading
store (decisions, orders, positions), Dagster in process. The sensor ticks are evaluated as the daemon
would, with the cursor carried from tick to tick.
"""

import datetime as dt
import json
import uuid

import dagster as dg
import numpy as np
import polars as pl
import pytest

from coin_platform.definitions import build_definitions
from coin_platform.defs.partitions import partition_range_tags
from coin_platform.events.kafka import make_producer, publish, read_from
from coin_platform.events.schemas import Candidate, Decision
from coin_platform.local.replay import DOCS_EXAMPLE_API_KEY, DOCS_EXAMPLE_API_SECRET
from coin_platform.market.client import BinanceFuturesClient
from coin_platform.market.klines import OHLCV_SCHEMA
from coin_platform.storage.layout import day_start, ohlcv_key
from coin_platform.trading.store import TradingStore
from coin_platform_tests.defs.harness import market_settings, object_store, run_job

SYMBOL = "BTCUSDT"
DAY = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
# The crafted day: calm, 30 falling minutes from 10:00, a rebound at 10:30 (RSI crosses up through 30).
SIGNAL_AT = day_start(DAY) + dt.timedelta(hours=10, minutes=30)
# How long a read that expects messages waits for the first one (a restarted broker can be slow to answer).
WAIT = 15_000


def crafted_day(scale: float) -> pl.DataFrame:
    n = 1440
    close = np.full(n, 100.0)
    close[1::2] += 0.05
    drop = 600
    close[drop : drop + 30] = 100.0 - 0.4 * np.arange(1, 31)
    close[drop + 30] = close[drop + 29] + 3.0
    close[drop + 31 :] = close[drop + 30] + np.where(np.arange(n - drop - 31) % 2, 0.05, 0.0)
    close *= scale
    open_ = np.concatenate([[close[0]], close[:-1]])
    volume = np.full(n, 10.0)
    return pl.DataFrame(
        {
            "open_time": [day_start(DAY) + dt.timedelta(minutes=i) for i in range(n)],
            "open": open_,
            "high": np.maximum(open_, close) * 1.0002,
            "low": np.minimum(open_, close) * 0.9998,
            "close": close,
            "volume": volume,
            "quote_volume": volume * close,
            "trades": np.full(n, 50),
            "taker_buy_volume": volume / 2,
            "taker_buy_quote_volume": volume * close / 2,
        }
    ).cast(OHLCV_SCHEMA)


@pytest.fixture
def topics() -> dict[str, str]:
    suffix = uuid.uuid4().hex[:10]
    return {"candidates_topic": f"test.candidates.{suffix}", "decisions_topic": f"test.decisions.{suffix}"}


def flow_settings(tmp_path, market_url, seaweedfs, s3_bucket, tansu, topics, environ=None, **trading):
    return market_settings(
        tmp_path,
        market_url,
        seaweedfs,
        s3_bucket,
        symbols=(SYMBOL,),
        intervals=("1m",),
        config={
            "strategies": [
                {"name": "rsi_reversal", "kind": "rsi_reversal", "intervals": ["1m"], "params": {"can_short": False}}
            ],
            # The crafted candle closed yesterday: old enough for a backfill rule, young enough here.
            "events": {**topics, "publish_max_age_seconds": 3 * 86_400},
            # Orders for a decision on that candle, too: at most two days old.
            "trading": {"order_notional_usdt": 100, "max_decision_age_seconds": 2 * 86_400, **trading},
        },
        environ={"KAFKA_BOOTSTRAP_SERVERS": tansu.bootstrap_servers, **(environ or {})},
    )


@pytest.fixture
def settings(tmp_path, replay_server, seaweedfs, s3_bucket, tansu, topics):
    return flow_settings(tmp_path, replay_server.url, seaweedfs, s3_bucket, tansu, topics)


def crafted_definitions(settings, market_url: str) -> dg.Definitions:
    """Definitions over a store holding the crafted day, priced near the market's current price."""
    with BinanceFuturesClient(market_url) as client:
        client.sync_clock()
        price, _ = client.last_price(SYMBOL)
    frame = crafted_day(price / 100.0)
    store = object_store(settings)
    store.write_parquet_many(
        {
            ohlcv_key("1m", SYMBOL, day_start(DAY) + dt.timedelta(hours=h)): part.drop("hour")
            for (h,), part in frame.with_columns(hour=pl.col("open_time").dt.hour())
            .partition_by("hour", as_dict=True)
            .items()
        }
    )
    return build_definitions(settings)


@pytest.fixture
def defs(settings, replay_server):
    return crafted_definitions(settings, replay_server.url)


def materialize_signals(defs) -> dg.ExecuteInProcessResult:
    return run_job(
        defs,
        "ingest_1m",
        tags=partition_range_tags(DAY, DAY, SYMBOL, SYMBOL),
        asset_selection=["hot_ohlcv_1m", "features_1m", "candidates_1m"],
    )


def tick(defs, name: str, instance, cursor: str | None):
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, definitions=defs, resources={"kafka": defs.resources["kafka"]}
    )
    return defs.resolve_sensor_def(name).evaluate_tick(context)


def run_request(defs, request: dg.RunRequest, job: str, instance) -> dg.ExecuteInProcessResult:
    return defs.resolve_job_def(job).execute_in_process(
        run_config=request.run_config, tags=request.tags, instance=instance
    )


def materializations(result: dg.ExecuteInProcessResult, asset: str) -> list[dg.AssetMaterialization]:
    return [
        e.event_specific_data.materialization
        for e in result.all_events
        if e.is_step_materialization and e.event_specific_data.materialization.asset_key == dg.AssetKey(asset)
    ]


def test_a_crafted_rebound_becomes_one_candidate_one_decision_one_paper_order_and_one_position(
    defs, settings, tansu, topics
):
    first = materialize_signals(defs)
    meta = first.asset_materializations_for_node("candidates_1m")[0].metadata
    assert meta["dagster/row_count"].value == 1 and meta["published"].value == 1

    again = materialize_signals(defs)  # a rerun finds it again and republishes nothing
    meta = again.asset_materializations_for_node("candidates_1m")[0].metadata
    assert meta["published"].value == 0 and meta["already_published"].value == 1
    messages, _ = read_from(tansu.bootstrap_servers, topics["candidates_topic"], {}, max_messages=10)
    (candidate,) = [Candidate.from_json(m.value) for m in messages]
    assert (candidate.open_time, candidate.strategy, candidate.signal) == (SIGNAL_AT, "rsi_reversal", "enter_long")

    with defs.resources["clickhouse"].open() as hot_store:
        stored = hot_store.read_candidates(SYMBOL, "1m", day_start(DAY), day_start(DAY) + dt.timedelta(days=1))
    assert stored["id"].to_list() == [candidate.id] and stored["published_at"].null_count() == 0

    with dg.instance_for_test() as instance:
        candidates_tick = tick(defs, "candidate_sensor", instance, None)
        (request,) = candidates_tick.run_requests
        assert request.run_key == candidate.id
        assert tick(defs, "candidate_sensor", instance, candidates_tick.cursor).run_requests == []

        traded = run_request(defs, request, "trade_job", instance)
        (decided,) = materializations(traded, "decisions")
        assert decided.metadata["action"].value == "buy" and decided.metadata["published"].value
        # trend -1 (ema_20 < ema_50 after the fall), momentum +1, RSI room (50 - 39.37) / 20
        assert decided.metadata["confidence"].value == pytest.approx(0.5 + 0.5 * (-1 + 1 + 0.5315) / 3, abs=1e-3)
        (order,) = materializations(traded, "orders")
        (book,) = materializations(traded, "positions")
    (published_decision,), _ = read_from(tansu.bootstrap_servers, topics["decisions_topic"], {}, max_messages=10)
    decision = Decision.from_json(published_decision.value)
    assert decision.candidate_id == candidate.id and decided.metadata["decision_id"].value == decision.id
    assert order.metadata["status"].value == "filled" and order.metadata["broker"].value == "paper"
    assert book.metadata["open_positions"].value == 1
    store = TradingStore(defs.resources["trading_store"].store_path)
    orders, positions = store.orders(), store.positions()
    with store.transaction() as tx:
        assert tx.decision(decision.id) is not None and tx.decision(decision.id)[1] is not None  # published
    assert orders.height == 1 and orders["client_order_id"][0] == decision.id
    assert positions.height == 1 and positions["quantity"][0] == pytest.approx(100 / decision.price)
    fill_price = store.fills()["price"][0]
    assert store.fills()["fee"][0] == pytest.approx(0.001 * fill_price * 100 / decision.price)


def test_duplicates_a_malformed_message_and_a_broker_restart_lose_nothing_and_double_nothing(
    defs, settings, tansu, topics
):
    materialize_signals(defs)
    candidates_topic = topics["candidates_topic"]
    (published,), _ = read_from(tansu.bootstrap_servers, candidates_topic, {}, max_messages=10)
    producer = make_producer(tansu.bootstrap_servers)
    try:  # the same candidate again (a duplicate delivery) and a message that is not a candidate
        publish(producer, candidates_topic, [(b"BTCUSDT", published.value), (b"BTCUSDT", b'{"type": "candidate"}')])
    finally:
        producer.close()
    tansu.restart()  # between produce and consume

    with dg.instance_for_test() as instance:
        first = tick(defs, "candidate_sensor", instance, None)
        keys = [r.run_key for r in first.run_requests]
        assert keys == [keys[0], keys[0]]  # the daemon launches a run_key once
        assert first.run_requests[0].tags["dagster/priority"] == "10"  # ahead of backfills in the run queue
        # Even when both runs happen, one decision goes out and one order is placed.
        statuses = [
            materializations(run_request(defs, request, "trade_job", instance), "orders")[0].metadata["status"].value
            for request in first.run_requests
        ]
        # Waiting reads: the restarted broker may take longer than one poll to answer a new consumer.
        decisions, _ = read_from(tansu.bootstrap_servers, topics["decisions_topic"], {}, max_messages=10, wait_ms=WAIT)
        assert len(decisions) == 1
        dead, _ = read_from(tansu.bootstrap_servers, candidates_topic + ".dlq", {}, max_messages=10, wait_ms=WAIT)
        (dead_letter,) = [json.loads(m.value) for m in dead]
        assert dead_letter["reason"] == "schema_version None is not 1" and dead_letter["offset"] == 2
        assert tick(defs, "candidate_sensor", instance, first.cursor).run_requests == []
    assert statuses == ["filled", "duplicate"]
    assert TradingStore(defs.resources["trading_store"].store_path).orders().height == 1


def test_the_kill_switch_refuses_the_order_and_records_why(
    tmp_path, replay_server, seaweedfs, s3_bucket, tansu, topics, defs
):
    materialize_signals(defs)
    killed = build_definitions(
        flow_settings(tmp_path, replay_server.url, seaweedfs, s3_bucket, tansu, topics, risk={"kill_switch": True})
    )
    with dg.instance_for_test() as instance:
        (request,) = tick(killed, "candidate_sensor", instance, None).run_requests
        (order,) = materializations(run_request(killed, request, "trade_job", instance), "orders")
    assert order.metadata["status"].value == "risk_rejected"
    assert order.metadata["reason"].value.startswith("kill_switch")
    store = TradingStore(killed.resources["trading_store"].store_path)
    assert store.orders().height == 0 and store.rejections()["rule"].to_list() == ["kill_switch"]


def test_a_binance_rejection_is_recorded_once_and_nothing_is_placed(
    tmp_path, seaweedfs, s3_bucket, tansu, topics, start_replay
):
    exchange = start_replay(faults="margin:first=1:on=order")
    settings = flow_settings(
        tmp_path,
        exchange.url,
        seaweedfs,
        s3_bucket,
        tansu,
        topics,
        environ={
            "BINANCE_ORDER_URL": exchange.url,
            "BINANCE_API_KEY": DOCS_EXAMPLE_API_KEY,
            "BINANCE_API_SECRET": DOCS_EXAMPLE_API_SECRET,
        },
        broker="binance",
    )
    defs = crafted_definitions(settings, exchange.url)
    materialize_signals(defs)
    with dg.instance_for_test() as instance:
        (request,) = tick(defs, "candidate_sensor", instance, None).run_requests
        statuses = [
            materializations(run_request(defs, request, "trade_job", instance), "orders")[0].metadata for _ in range(2)
        ]
    assert [m["status"].value for m in statuses] == ["broker_rejected", "duplicate"]
    assert "-2019" in statuses[0]["reason"].value and statuses[0]["broker"].value == "binance"
    assert exchange.stats()["orders_placed"] == 0
    orders = TradingStore(defs.resources["trading_store"].store_path).orders()
    assert orders["status"].to_list() == ["REJECTED"]


def test_an_ingest_run_publishes_its_candidates_before_it_loads_the_hot_store(defs):
    """The hot-store load and the checks wait until the candidates are out: nothing on the way to an order needs
    them, and an ingest run executes one step at a time."""
    result = materialize_signals(defs)
    started = [e.step_key for e in result.all_events if e.event_type_value == "STEP_START"]
    assert started.index("candidates_1m") < started.index("hot_ohlcv_1m")
    assert started[0] == "features_1m"
