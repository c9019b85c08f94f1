"""Topic sensors against tansu: a bad message goes to the dead-letter topic and never stops the topic.

Each bad kind comes from the security review (issue 9): values the parser used to crash
on, bytes that are not UTF-8, oversized messages, and well-formed messages naming a
symbol, strategy or interval the platform does not trade.
"""

import datetime as dt
import json
import re
import uuid

import dagster as dg
import pytest

from coin_platform.definitions import build_definitions
from coin_platform.events.kafka import ensure_topics, make_producer, position_from_cursor, publish, read_from
from coin_platform.events.schemas import Candidate
from coin_platform_tests.defs.harness import market_settings

OPEN = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
# A JSON literal put in place of a field's value (json.dumps cannot write some of them).
LITERAL = "@@literal@@"


def candidate(n: int, **overrides) -> Candidate:
    fields = dict(
        strategy="rsi_reversal",
        symbol="BTCUSDT",
        interval="1m",
        open_time=OPEN + dt.timedelta(minutes=n),
        close_time=OPEN + dt.timedelta(minutes=n, seconds=59.999),
        signal="enter_long",
        price=84_000.5,
        features={"rsi_14": 28.5},
        detected_at=OPEN + dt.timedelta(minutes=n + 1),
    )
    return Candidate(**{**fields, **overrides})


def with_literal(message: bytes, field: str, literal: str) -> bytes:
    body = json.loads(message)
    body[field] = LITERAL
    return json.dumps(body).replace(json.dumps(LITERAL), literal).encode()


def bad_messages(make, number_field: str, time_field: str, mapping_field: str) -> list[tuple[bytes | None, str]]:
    """(message, the reason it must be dead-lettered with) for every bad kind."""
    valid = make(50).to_json()
    return [
        (with_literal(valid, number_field, str(10**400)), f"{number_field} must be a finite number"),
        (with_literal(valid, number_field, "9" * 5_000), "not JSON: .*digits"),
        (with_literal(valid, time_field, '"9999-12-31T23:30:00-05:00"'), f"{time_field} is out of range"),
        (with_literal(valid, mapping_field, "[" * 5_000 + "]" * 5_000), "not JSON: nested too deeply"),
        (make(51).to_json().decode().encode("utf-16"), "not UTF-8"),
        (b'{"type": "' + "é".encode("latin-1") + b'"}', "not UTF-8"),
        (None, "empty message"),
        (make(52, **{mapping_field: {f"f{i:05d}": 1.0 for i in range(40_000)}}).to_json(), "larger than 65536 bytes"),
        (make(53, **{mapping_field: {f"f{i}": 1.0 for i in range(300)}}).to_json(), f"{mapping_field}: 300 entries"),
        (make(54, symbol="DOGEUSDT").to_json(), "symbol 'DOGEUSDT' is not configured"),
        (make(55, strategy="pump_and_dump").to_json(), "strategy 'pump_and_dump' is not configured"),
        (make(56, interval="1h").to_json(), "interval '1h' is not one rsi_reversal evaluates"),
    ]


@pytest.fixture
def topics() -> dict[str, str]:
    suffix = uuid.uuid4().hex[:10]
    return {"candidates_topic": f"test.candidates.{suffix}", "decisions_topic": f"test.decisions.{suffix}"}


@pytest.fixture
def defs(tmp_path, seaweedfs, s3_bucket, tansu, topics) -> dg.Definitions:
    settings = market_settings(
        tmp_path,
        "http://127.0.0.1:9",  # never called: a sensor tick only reads and writes Kafka
        seaweedfs,
        s3_bucket,
        symbols=("BTCUSDT",),
        intervals=("1m", "15m"),
        config={
            "strategies": [{"name": "rsi_reversal", "kind": "rsi_reversal", "intervals": ["1m"]}],
            "events": topics,
        },
        environ={"KAFKA_BOOTSTRAP_SERVERS": tansu.bootstrap_servers},
    )
    return build_definitions(settings)


SENSORS = {
    "candidate_sensor": ("candidates_topic", candidate, ("price", "open_time", "features")),
}


@pytest.mark.parametrize("sensor", SENSORS)
def test_every_bad_message_is_dead_lettered_with_its_reason_and_the_valid_ones_become_runs(sensor, defs, tansu, topics):
    topic_key, make, fields = SENSORS[sensor]
    topic = topics[topic_key]
    bad = bad_messages(make, *fields)
    first, last = make(1), make(2)
    messages = [first.to_json(), *(message for message, _ in bad), last.to_json()]
    ensure_topics(tansu.bootstrap_servers, [topic])  # one partition: the cursor is one offset
    producer = make_producer(tansu.bootstrap_servers)
    try:
        publish(producer, topic, [(b"BTCUSDT", message) for message in messages])
    finally:
        producer.close()

    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(
            instance=instance, cursor=None, definitions=defs, resources={"kafka": defs.resources["kafka"]}
        )
        result = defs.resolve_sensor_def(sensor).evaluate_tick(context)

    assert [request.run_key for request in result.run_requests] == [first.id, last.id]
    assert position_from_cursor(result.cursor) == {0: len(messages)}
    dead, _ = read_from(tansu.bootstrap_servers, topic + ".dlq", {}, max_messages=100)
    letters = [json.loads(m.value) for m in dead]
    assert [letter["offset"] for letter in letters] == list(range(1, len(bad) + 1))
    for letter, (_, reason) in zip(letters, bad, strict=True):
        assert letter["topic"] == topic
        assert re.search(reason, letter["reason"]), (reason, letter["reason"])
