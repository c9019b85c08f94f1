"""tansu as the local Kafka, against the real broker: topics in S3 survive a restart."""

from __future__ import annotations

import time
import uuid

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic

from coin_platform.local.stack import StackError, free_port, start_tansu


def _consume(bootstrap_servers: str, topic: str, group_id: str,
             count: int) -> list[tuple[bytes, bytes, int]]:
    """(key, value, partition) of up to `count` records, read as a new consumer group."""
    consumer = KafkaConsumer(
        topic, bootstrap_servers=bootstrap_servers, group_id=group_id,
        auto_offset_reset="earliest", session_timeout_ms=6000, heartbeat_interval_ms=1000,
    )
    received: list[tuple[bytes, bytes, int]] = []
    deadline = time.monotonic() + 30
    try:
        while len(received) < count and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                received.extend((r.key, r.value, r.partition) for r in records)
    finally:
        consumer.close()
    return received


def test_keyed_messages_survive_a_broker_restart(tansu):
    """tansu keeps topics and messages in S3, so a restarted broker serves them all again."""
    topic = f"candles-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=tansu.bootstrap_servers)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    finally:
        admin.close()
    sent = [(f"SYM{i % 4}".encode(), f"candle-{i:02d}".encode()) for i in range(20)]
    producer = KafkaProducer(bootstrap_servers=tansu.bootstrap_servers, acks="all")
    try:
        for key, value in sent:
            producer.send(topic, key=key, value=value)
        producer.flush(timeout=15)
    finally:
        producer.close()

    before = _consume(tansu.bootstrap_servers, topic, f"{topic}-before", len(sent))
    tansu.restart()
    after = _consume(tansu.bootstrap_servers, topic, f"{topic}-after", len(sent))

    for received in (before, after):
        assert sorted((key, value) for key, value, _ in received) == sorted(sent)
        for key in {key for key, _ in sent}:
            values = [value for k, value, _ in received if k == key]
            partitions = {partition for k, _, partition in received if k == key}
            assert len(partitions) == 1 and values == sorted(values)  # one partition, in order
    assert sorted(before) == sorted(after)


def test_tansu_refuses_s3_storage_without_its_bucket(seaweedfs, tmp_path):
    with pytest.raises(StackError, match="bucket 'no-such-bucket' is not usable"):
        start_tansu(port=free_port(), log_file=tmp_path / "tansu.log",
                    storage_url="s3://no-such-bucket/", s3=seaweedfs)


def test_tansu_runs_on_memory_storage(tmp_path):
    process = start_tansu(port=free_port(), log_file=tmp_path / "tansu.log")
    try:
        assert process.is_running()
    finally:
        process.stop()
    assert not process.is_running()
