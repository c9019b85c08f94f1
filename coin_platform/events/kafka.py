"""Kafka topics through kafka-python: idempotent publishing and reading from a kept position.

Readers do not use consumer groups: a sensor keeps its position (the next offset of
every partition) in its own cursor, which the Dagster daemon stores together with the
runs the tick requested. Committed group offsets would be a second record that can
disagree with the runs (commit before launch loses messages, commit after repeats
them); the cursor moves exactly when the runs are recorded.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

REQUEST_TIMEOUT_MS = 10_000
# Fail fast when the broker is down: kafka-python waits 30 s for a first connection by default.
BOOTSTRAP_TIMEOUT_MS = 5_000
# Each of a dead letter's key, value excerpt and reason; with JSON escaping (up to 6 bytes a
# character) the whole letter stays well under Kafka's default 1 MB message limit.
DEAD_LETTER_MAX_BYTES = 32 * 1024


class EventsError(RuntimeError):
    """Kafka could not be reached or did not confirm; the message names the broker and topic."""


@dataclass(frozen=True)
class Message:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def ensure_topics(bootstrap_servers: str, topics: Iterable[str], partitions: int = 1) -> list[str]:
    """Create the topics that do not exist yet; returns the ones created."""
    wanted = sorted(set(topics))
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap_servers,
            request_timeout_ms=REQUEST_TIMEOUT_MS,
            bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS,
        )
    except KafkaError as exc:
        raise EventsError(f"Kafka at {bootstrap_servers} is not reachable: {exc}") from exc
    try:
        missing = [t for t in wanted if t not in set(admin.list_topics())]
        created = []
        for topic in missing:
            try:
                admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
                created.append(topic)
            except TopicAlreadyExistsError:  # another process won the race
                pass
        return created
    finally:
        admin.close()


def list_topics(bootstrap_servers: str, *, timeout_ms: int = BOOTSTRAP_TIMEOUT_MS) -> set[str]:
    """The topics the broker holds; raises EventsError when it does not answer within `timeout_ms`."""
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap_servers, request_timeout_ms=timeout_ms, bootstrap_timeout_ms=timeout_ms
        )
    except KafkaError as exc:
        raise EventsError(f"Kafka at {bootstrap_servers} is not reachable: {exc}") from exc
    try:
        return set(admin.list_topics())
    except KafkaError as exc:
        raise EventsError(f"Kafka at {bootstrap_servers} did not list its topics: {exc}") from exc
    finally:
        admin.close()


def make_producer(bootstrap_servers: str) -> KafkaProducer:
    """acks=all and the idempotent producer: a retried send is written once."""
    try:
        return KafkaProducer(
            bootstrap_servers=bootstrap_servers,
            acks="all",
            enable_idempotence=True,
            retries=5,
            request_timeout_ms=REQUEST_TIMEOUT_MS,
            max_block_ms=REQUEST_TIMEOUT_MS,
            bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS,
        )
    except KafkaError as exc:
        raise EventsError(f"Kafka at {bootstrap_servers} is not reachable: {exc}") from exc


def publish(producer: KafkaProducer, topic: str, messages: Sequence[tuple[bytes, bytes]]) -> list[int]:
    """Send (key, value) pairs and wait until the broker confirms every one; returns their offsets."""
    try:
        futures = [producer.send(topic, key=key, value=value) for key, value in messages]
        producer.flush(timeout=REQUEST_TIMEOUT_MS / 1000)
        return [future.get(timeout=REQUEST_TIMEOUT_MS / 1000).offset for future in futures]
    except KafkaError as exc:
        raise EventsError(f"publishing {len(messages)} message(s) to {topic} failed: {exc}") from exc


def dead_letter(topic: str, message: Message, reason: str) -> tuple[bytes, bytes]:
    """The (key, value) for the dead-letter topic: the original bytes, where they came from, and why.

    Key, value and reason are cut to DEAD_LETTER_MAX_BYTES each, so a dead letter always fits
    the broker's message size (an oversized original would otherwise block the topic's sensor);
    `value_bytes` keeps the original size, and `offset` points at the whole message.
    """
    key = (message.key or b"")[:DEAD_LETTER_MAX_BYTES]
    value = message.value
    body = {
        "reason": reason[:DEAD_LETTER_MAX_BYTES],
        "topic": message.topic,
        "partition": message.partition,
        "offset": message.offset,
        "key": key.decode("utf-8", "replace") if key else None,
        "value": value[:DEAD_LETTER_MAX_BYTES].decode("utf-8", "replace") if value is not None else None,
        "value_bytes": len(value) if value is not None else None,
    }
    return (key, json.dumps(body, sort_keys=True).encode())


def read_from(
    bootstrap_servers: str,
    topic: str,
    position: dict[int, int],
    *,
    max_messages: int,
    poll_timeout_ms: int = 1_000,
    wait_ms: int = 0,
) -> tuple[list[Message], dict[int, int]]:
    """Messages after `position` (partition -> next offset; a partition not in it starts at its
    beginning), at most `max_messages`, and the position after them.

    Reads until every partition is at the high watermark its fetches report, so a tick
    sees everything published before it and returns. (The end offsets from ListOffsets
    are not used: tansu on S3 storage reports stale ones; the fetch's watermark is right.)
    With nothing new, it waits up to `wait_ms` for the first message (Kafka's long poll) and
    returns as soon as one arrives, with everything published up to then.
    """
    consumer = None
    try:
        consumer = KafkaConsumer(
            bootstrap_servers=bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",  # a position below the log start resumes at the start
            request_timeout_ms=REQUEST_TIMEOUT_MS + 1_000,
            bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS,
        )
        assigned = _assign_at(consumer, topic, position)
        if not assigned:
            return [], dict(position)
        messages: list[Message] = []
        wait_until = time.monotonic() + wait_ms / 1000
        while len(messages) < max_messages:
            batch = consumer.poll(timeout_ms=poll_timeout_ms, max_records=max_messages - len(messages))
            for tp, records in batch.items():
                messages.extend(Message(topic, tp.partition, r.offset, r.key, r.value) for r in records)
            watermarks = [consumer.highwater(tp) for tp in assigned]
            caught_up = all(
                mark is not None and consumer.position(tp) >= mark
                for tp, mark in zip(assigned, watermarks, strict=True)
            )
            if messages and (caught_up or not batch):
                break
            if not messages:
                remaining_ms = int((wait_until - time.monotonic()) * 1000)
                if remaining_ms <= 0:
                    break
                poll_timeout_ms = min(poll_timeout_ms, remaining_ms)
        after = {tp.partition: consumer.position(tp) for tp in assigned}
        return messages, after
    except KafkaError as exc:
        raise EventsError(f"reading {topic} from Kafka at {bootstrap_servers} failed: {exc}") from exc
    finally:
        if consumer is not None:
            consumer.close()


def _assign_at(consumer: KafkaConsumer, topic: str, position: dict[int, int]) -> list[TopicPartition]:
    """Assign every partition of `topic` to `consumer`, each at its kept position or its start; [] when the
    topic does not exist."""
    partitions = consumer.partitions_for_topic(topic)
    assigned = [TopicPartition(topic, p) for p in sorted(partitions or ())]
    if assigned:
        consumer.assign(assigned)
    for tp in assigned:
        if tp.partition in position:
            consumer.seek(tp, position[tp.partition])
        else:
            consumer.seek_to_beginning(tp)
    return assigned


def end_offsets(
    bootstrap_servers: str, topic: str, position: dict[int, int], *, timeout_ms: int = 1_000
) -> dict[int, int]:
    """The next offset each partition of `topic` will get (its high watermark); {} when the topic does not exist.

    Read from a fetch at `position` (a reader's kept position, so only the messages it has not read yet
    travel), not from ListOffsets, which tansu on S3 storage answers with stale offsets (see `read_from`).
    Raises EventsError when the broker does not answer or a partition's watermark does not come within
    `timeout_ms`.
    """
    consumer = None
    try:
        consumer = KafkaConsumer(
            bootstrap_servers=bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            request_timeout_ms=timeout_ms + 1_000,
            bootstrap_timeout_ms=timeout_ms,
            max_partition_fetch_bytes=64 * 1024,
        )
        assigned = _assign_at(consumer, topic, position)
        if not assigned:
            return {}
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            consumer.poll(timeout_ms=max(1, int((deadline - time.monotonic()) * 1000)), max_records=1)
            marks = {tp.partition: consumer.highwater(tp) for tp in assigned}
            if all(mark is not None for mark in marks.values()):
                return marks
            if time.monotonic() >= deadline:
                missing = sorted(p for p, mark in marks.items() if mark is None)
                raise EventsError(f"{topic} on Kafka at {bootstrap_servers}: no watermark of partitions {missing}")
    except KafkaError as exc:
        raise EventsError(f"reading the end of {topic} from Kafka at {bootstrap_servers} failed: {exc}") from exc
    finally:
        if consumer is not None:
            consumer.close()


def position_to_cursor(position: dict[int, int]) -> str:
    return json.dumps({str(p): o for p, o in sorted(position.items())})


def position_from_cursor(cursor: str | None) -> dict[int, int]:
    return {int(p): int(o) for p, o in json.loads(cursor).items()} if cursor else {}
