"""Kafka helpers against the session's tansu broker (S3-backed on SeaweedFS)."""

import json
import threading
import uuid

import pytest

from coin_platform.events.kafka import (
    EventsError,
    Message,
    dead_letter,
    ensure_topics,
    make_producer,
    position_from_cursor,
    position_to_cursor,
    publish,
    read_from,
)


@pytest.fixture
def topic(tansu) -> str:
    name = f"test.{uuid.uuid4().hex[:12]}"
    assert ensure_topics(tansu.bootstrap_servers, [name]) == [name]
    return name


def test_topics_are_created_once(tansu, topic):
    assert ensure_topics(tansu.bootstrap_servers, [topic]) == []


def test_a_reader_resumes_after_its_position_and_sees_everything_published_before_it(tansu, topic):
    producer = make_producer(tansu.bootstrap_servers)
    try:
        assert publish(producer, topic, [(b"BTCUSDT", b"1"), (b"ETHUSDT", b"2")]) == [0, 1]
        first, position = read_from(tansu.bootstrap_servers, topic, {}, max_messages=10)
        again, same = read_from(tansu.bootstrap_servers, topic, position, max_messages=10)
        publish(producer, topic, [(b"BTCUSDT", b"3")])
        later, after = read_from(tansu.bootstrap_servers, topic, position, max_messages=10)
    finally:
        producer.close()
    assert [(m.key, m.value, m.offset) for m in first] == [(b"BTCUSDT", b"1", 0), (b"ETHUSDT", b"2", 1)]
    assert again == [] and same == position == {0: 2}
    assert [m.value for m in later] == [b"3"] and after == {0: 3}
    assert position_from_cursor(position_to_cursor(after)) == after


def test_a_waiting_read_returns_the_message_published_during_its_wait(tansu, topic):
    """The sensor's long poll: nothing new at the start, a message a second later, and the read returns it."""
    producer = make_producer(tansu.bootstrap_servers)
    try:
        assert publish(producer, topic, [(b"BTCUSDT", b"before")]) == [0]
        _, position = read_from(tansu.bootstrap_servers, topic, {}, max_messages=10)
        assert read_from(tansu.bootstrap_servers, topic, position, max_messages=10) == ([], position)  # no wait
        later = threading.Timer(1.0, publish, args=(producer, topic, [(b"ETHUSDT", b"during")]))
        later.start()
        messages, after = read_from(tansu.bootstrap_servers, topic, position, max_messages=10, wait_ms=30_000)
        later.join()
    finally:
        producer.close()
    assert [m.value for m in messages] == [b"during"]
    assert after == {0: 2}


def test_max_messages_bounds_a_read_and_the_rest_follows(tansu, topic):
    producer = make_producer(tansu.bootstrap_servers)
    try:
        publish(producer, topic, [(b"k", str(i).encode()) for i in range(5)])
    finally:
        producer.close()
    first, position = read_from(tansu.bootstrap_servers, topic, {}, max_messages=3)
    rest, end = read_from(tansu.bootstrap_servers, topic, position, max_messages=3)
    assert [m.value for m in first + rest] == [b"0", b"1", b"2", b"3", b"4"] and end == {0: 5}


def test_messages_published_before_a_broker_restart_are_read_after_it(tansu, topic):
    producer = make_producer(tansu.bootstrap_servers)
    try:
        publish(producer, topic, [(b"BTCUSDT", b"before restart")])
    finally:
        producer.close()
    tansu.restart()
    messages, position = read_from(tansu.bootstrap_servers, topic, {}, max_messages=10)
    assert [m.value for m in messages] == [b"before restart"] and position == {0: 1}


def test_a_dead_letter_keeps_the_original_bytes_and_the_reason(tansu, topic):
    producer = make_producer(tansu.bootstrap_servers)
    try:
        publish(producer, topic, [(b"BTCUSDT", b"{not json")])
        (message,), _ = read_from(tansu.bootstrap_servers, topic, {}, max_messages=1)
        key, value = dead_letter(topic, message, "not JSON: Expecting property name")
    finally:
        producer.close()
    assert key == b"BTCUSDT"
    assert json.loads(value) == {
        "reason": "not JSON: Expecting property name",
        "topic": topic,
        "partition": 0,
        "offset": 0,
        "key": "BTCUSDT",
        "value": "{not json",
        "value_bytes": 9,
    }


def test_a_dead_letter_of_an_oversized_message_still_fits_a_kafka_message(tansu, topic):
    original = Message(topic, 0, 7, b"BTCUSDT", b'"' * 900_000)  # JSON escaping doubles it
    key, value = dead_letter(topic, original, "message of 900000 bytes is larger than 65536 bytes")
    producer = make_producer(tansu.bootstrap_servers)
    try:
        publish(producer, topic, [(key, value)])
    finally:
        producer.close()
    (stored,), _ = read_from(tansu.bootstrap_servers, topic, {}, max_messages=1)
    letter = json.loads(stored.value)
    assert letter["value_bytes"] == 900_000 and letter["offset"] == 7
    assert original.value.decode().startswith(letter["value"])


def test_an_unreachable_broker_is_named(tmp_path):
    from coin_platform.local.stack import free_port

    address = f"127.0.0.1:{free_port()}"
    with pytest.raises(EventsError, match=address):
        ensure_topics(address, ["x"])
