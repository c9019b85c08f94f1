"""The local stack against its real services: SeaweedFS S3, tansu Kafka, `coin stack`."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse

import grpc
import polars as pl
import pyarrow.parquet as pq
import pytest
import requests
import yaml
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from pyarrow import fs

from coin_platform.local.stack import (
    GRPC_PORT_OFFSET,
    LOOPBACK,
    TANSU_BUCKET,
    LocalStack,
    SeaweedPorts,
    ServiceProcess,
    StackError,
    free_port,
    start_tansu,
)
from coin_platform.settings import PROJECT_ROOT, Settings, load_settings

CANDLES = pl.DataFrame({
    "open_time": [1_735_689_600_000, 1_735_689_660_000],
    "close": [93_576.0, 93_612.5],
    "volume": [12.5, 8.25],
})


def _error_code(error: ClientError) -> str:
    return error.response["Error"]["Code"]


# --- SeaweedFS ---------------------------------------------------------------


def test_boto3_signed_put_get_round_trip(seaweedfs, s3_bucket):
    client = seaweedfs.client()
    client.put_object(Bucket=s3_bucket, Key="ohlcv/1m/BTCUSDT/a.bin", Body=b"\x00candles\xff")

    body = client.get_object(Bucket=s3_bucket, Key="ohlcv/1m/BTCUSDT/a.bin")["Body"].read()
    listed = client.list_objects_v2(Bucket=s3_bucket, Prefix="ohlcv/")["Contents"]

    assert body == b"\x00candles\xff"
    assert [item["Key"] for item in listed] == ["ohlcv/1m/BTCUSDT/a.bin"]


def test_pyarrow_s3_filesystem_round_trip(seaweedfs, s3_bucket):
    """pyarrow takes host:port plus scheme, not a URL; this is the spelling that works."""
    arrow_s3 = fs.S3FileSystem(
        endpoint_override=urlparse(seaweedfs.endpoint_url).netloc, scheme="http",
        access_key=seaweedfs.access_key, secret_key=seaweedfs.secret_key,
        region=seaweedfs.region,
    )
    path = f"{s3_bucket}/ohlcv/1m/BTCUSDT/2025-01-01_00.parquet"
    pq.write_table(CANDLES.to_arrow(), path, filesystem=arrow_s3)

    assert pq.read_table(path, filesystem=arrow_s3).equals(CANDLES.to_arrow())
    head = seaweedfs.client().head_object(Bucket=s3_bucket, Key=path.split("/", 1)[1])
    assert head["ContentLength"] > 0


def test_polars_reads_parquet_with_storage_options(seaweedfs, s3_bucket):
    buffer = io.BytesIO()
    CANDLES.write_parquet(buffer)
    seaweedfs.client().put_object(Bucket=s3_bucket, Key="c.parquet", Body=buffer.getvalue())
    storage_options = {
        "aws_endpoint_url": seaweedfs.endpoint_url,
        "aws_allow_http": "true",
        "aws_access_key_id": seaweedfs.access_key,
        "aws_secret_access_key": seaweedfs.secret_key,
        "aws_region": seaweedfs.region,
    }

    frame = pl.read_parquet(f"s3://{s3_bucket}/c.parquet", storage_options=storage_options)

    assert frame.equals(CANDLES)


def test_unsigned_requests_are_refused(seaweedfs, s3_bucket):
    """Without an identity file SeaweedFS serves anyone; with ours it must not."""
    listing = requests.get(f"{seaweedfs.endpoint_url}/{s3_bucket}", timeout=5)
    anonymous = seaweedfs.client(Config(signature_version=UNSIGNED))

    with pytest.raises(ClientError) as refused:
        anonymous.put_object(Bucket=s3_bucket, Key="anonymous.txt", Body=b"x")

    assert listing.status_code == 403
    assert _error_code(refused.value) == "AccessDenied"
    assert "Contents" not in seaweedfs.client().list_objects_v2(Bucket=s3_bucket)


def test_wrong_secret_is_refused(seaweedfs, s3_bucket):
    impostor = type(seaweedfs)(seaweedfs.endpoint_url, seaweedfs.access_key, "not-the-secret")

    with pytest.raises(ClientError) as refused:
        impostor.client().list_objects_v2(Bucket=s3_bucket)

    assert _error_code(refused.value) == "SignatureDoesNotMatch"


def test_non_empty_bucket_is_not_deleted(seaweedfs, s3_bucket):
    """SeaweedFS's default would delete the bucket with everything in it."""
    client = seaweedfs.client()
    client.put_object(Bucket=s3_bucket, Key="keep.txt", Body=b"keep")

    with pytest.raises(ClientError) as refused:
        client.delete_bucket(Bucket=s3_bucket)

    assert _error_code(refused.value) == "BucketNotEmpty"
    assert client.get_object(Bucket=s3_bucket, Key="keep.txt")["Body"].read() == b"keep"


# Every local process can reach these ports, so they must not serve or take object
# data without credentials; only the signed S3 gateway may.
_REFUSED = (401, 403, 404)


def _assert_refused(answers: dict[str, requests.Response]) -> None:
    """Names every request that was not refused, with the status it got instead."""
    assert {what: answer.status_code for what, answer in answers.items()
            if answer.status_code not in _REFUSED} == {}


def _put_private(seaweedfs_server, bucket: str) -> None:
    seaweedfs_server.s3.client().put_object(Bucket=bucket, Key="private.txt", Body=b"private")


def _assert_private_unchanged_and_s3_writable(seaweedfs_server, bucket: str) -> None:
    client = seaweedfs_server.s3.client()
    assert client.get_object(Bucket=bucket, Key="private.txt")["Body"].read() == b"private"
    client.put_object(Bucket=bucket, Key="after.txt", Body=b"still writable")
    assert client.get_object(Bucket=bucket, Key="after.txt")["Body"].read() == b"still writable"


def test_filer_port_refuses_unsigned_reads_and_writes(seaweedfs_server, s3_bucket):
    """The filer serves bucket objects under /buckets/<bucket>/ over plain HTTP."""
    _put_private(seaweedfs_server, s3_bucket)
    filer = f"http://{LOOPBACK}:{seaweedfs_server.ports.filer}"
    private = f"{filer}/buckets/{s3_bucket}/private.txt"

    answers = {
        "GET object": requests.get(private, timeout=5),
        "list bucket": requests.get(f"{filer}/buckets/{s3_bucket}/",
                                    headers={"Accept": "application/json"}, timeout=5),
        "PUT object": requests.put(private, data=b"tampered", timeout=5),
        "POST object": requests.post(f"{filer}/buckets/{s3_bucket}/planted.txt",
                                     files={"file": b"planted"}, timeout=5),
        "DELETE object": requests.delete(private, timeout=5),
    }

    _assert_refused(answers)
    assert b"private" not in answers["GET object"].content
    _assert_private_unchanged_and_s3_writable(seaweedfs_server, s3_bucket)
    assert "planted.txt" not in {item["Key"] for item in seaweedfs_server.s3.client()
                                 .list_objects_v2(Bucket=s3_bucket)["Contents"]}


def test_master_port_refuses_unsigned_writes_and_deletes(seaweedfs_server, s3_bucket):
    """The master hands out write locations, stores uploads and drops whole collections."""
    _put_private(seaweedfs_server, s3_bucket)
    master = f"http://{LOOPBACK}:{seaweedfs_server.ports.master}"

    answers = {
        "assign a file id": requests.get(f"{master}/dir/assign", timeout=5),
        "submit a file": requests.post(f"{master}/submit", files={"file": b"planted"}, timeout=5),
        "delete the bucket's collection": requests.get(
            f"{master}/col/delete", params={"collection": s3_bucket}, timeout=5),
    }

    _assert_refused(answers)
    _assert_private_unchanged_and_s3_writable(seaweedfs_server, s3_bucket)


def test_volume_port_refuses_unsigned_needle_reads_and_writes(seaweedfs_server, s3_bucket):
    """A volume server takes, serves and deletes needles by file id unless JWTs are required."""
    _put_private(seaweedfs_server, s3_bucket)
    volume = f"http://{LOOPBACK}:{seaweedfs_server.ports.volume}"
    volume_id = next(found["Id"] for found in requests.get(f"{volume}/status", timeout=5)
                     .json()["Volumes"] if found["Collection"] == s3_bucket)
    needle = f"{volume}/{volume_id},0badc0ffee"

    answers = {
        "write": requests.post(needle, files={"file": b"planted"}, timeout=5),
        "read": requests.get(needle, timeout=5),
        "delete": requests.delete(needle, timeout=5),
    }

    _assert_refused(answers)
    _assert_private_unchanged_and_s3_writable(seaweedfs_server, s3_bucket)


def _protobuf_strings(*values: bytes) -> bytes:
    """A protobuf message whose fields 1, 2, ... are the given short strings."""
    return b"".join(bytes([number << 3 | 2, len(value)]) + value
                    for number, value in enumerate(values, start=1))


def _grpc_call(port: int, method: str, request: bytes,
               credentials: grpc.ChannelCredentials | None = None) -> bytes | grpc.StatusCode:
    """The raw answer of one unary gRPC call, or the status code it failed with."""
    target = f"{LOOPBACK}:{port + GRPC_PORT_OFFSET}"
    with (grpc.secure_channel(target, credentials) if credentials
          else grpc.insecure_channel(target)) as channel:
        try:
            return channel.unary_unary(method)(request, timeout=10)
        except grpc.RpcError as failed:
            return failed.code()


@pytest.mark.parametrize("client", ["plaintext", "TLS without a client certificate"])
def test_grpc_ports_refuse_clients_without_the_stack_certificate(seaweedfs_server, s3_bucket, client):
    """Over gRPC the filer lists and deletes objects, and the master signs volume writes."""
    _put_private(seaweedfs_server, s3_bucket)
    ports = seaweedfs_server.ports
    entry = _protobuf_strings(f"/buckets/{s3_bucket}".encode(), b"private.txt")
    credentials = None if client == "plaintext" else grpc.ssl_channel_credentials(
        root_certificates=(seaweedfs_server.config_dir / "ca.crt").read_bytes())

    answers = {
        "filer: look up the object": _grpc_call(
            ports.filer, "/filer_pb.SeaweedFiler/LookupDirectoryEntry", entry, credentials),
        "filer: delete the object": _grpc_call(
            ports.filer, "/filer_pb.SeaweedFiler/DeleteEntry", entry, credentials),
        "master: assign a signed write": _grpc_call(
            ports.master, "/master_pb.Seaweed/Assign", b"", credentials),
        "volume: server status": _grpc_call(
            ports.volume, "/volume_server_pb.VolumeServer/VolumeServerStatus", b"", credentials),
    }

    assert {what: answer for what, answer in answers.items()
            if answer != grpc.StatusCode.UNAVAILABLE} == {}
    _assert_private_unchanged_and_s3_writable(seaweedfs_server, s3_bucket)


def test_grpc_ports_answer_the_stack_certificate(seaweedfs_server, s3_bucket):
    """The other half of the refusal test: the same call, with weed's own certificate, is served."""
    _put_private(seaweedfs_server, s3_bucket)
    config_dir = seaweedfs_server.config_dir
    credentials = grpc.ssl_channel_credentials(*(
        (config_dir / name).read_bytes() for name in ("ca.crt", "node.key", "node.crt")))

    answer = _grpc_call(
        seaweedfs_server.ports.filer, "/filer_pb.SeaweedFiler/LookupDirectoryEntry",
        _protobuf_strings(f"/buckets/{s3_bucket}".encode(), b"private.txt"), credentials)

    assert isinstance(answer, bytes) and b"private.txt" in answer


# --- tansu -------------------------------------------------------------------


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


# --- coin stack up / status / down --------------------------------------------


def _settings_on_free_ports(tmp_path: Path, **environ: str) -> Settings:
    """The project's config.yaml with every local_stack port moved to a free one."""
    config = yaml.safe_load((PROJECT_ROOT / "config.yaml").read_text())
    seaweed = SeaweedPorts.free()
    kafka_port = free_port(avoid=set(seaweed.all_ports().values()))
    config["local_stack"] = {
        "s3_port": seaweed.s3, "master_port": seaweed.master, "volume_port": seaweed.volume,
        "filer_port": seaweed.filer, "kafka_port": kafka_port,
        "replay_port": free_port(avoid={kafka_port, *seaweed.all_ports().values()}),
    }
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(config))
    return load_settings(environ={"COIN_HOME": str(tmp_path / ".coin"),
                                  "COIN_CONFIG": str(config_file), **environ})


def test_replay_mode_adds_the_replay_server_to_the_stack(tmp_path):
    settings = _settings_on_free_ports(tmp_path, MARKET_SOURCE="replay")
    stack = LocalStack(settings)
    try:
        started = stack.up()
        lines, healthy = stack.status()
        klines = requests.get(f"{stack.replay_url}/fapi/v1/klines",
                              params={"symbol": "BTCUSDT", "interval": "1h", "limit": 3}, timeout=5)
    finally:
        stopped = stack.down()
    assert [line.split(":")[0] for line in started] == ["seaweedfs", "tansu", "replay"]
    assert healthy and lines[2].startswith("replay: running")
    assert klines.status_code == 200 and len(klines.json()) == 3
    assert stopped[0].startswith("replay: stopped (pid ")
    assert not LocalStack(settings).status()[1]


def test_local_stack_up_is_idempotent_and_down_stops_by_pid(tmp_path):
    settings = _settings_on_free_ports(tmp_path)
    stack = LocalStack(settings)
    run_dir = settings.coin_home / "run"
    try:
        first = stack.up()
        again = stack.up()
        lines, healthy = stack.status()
        pids = {name: int((run_dir / f"{name}.pid").read_text()) for name in ("seaweedfs", "tansu")}
        s3 = stack.s3.client()
        buckets = {b["Name"] for b in s3.list_buckets()["Buckets"]}
        admin = KafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap_servers)
        try:
            admin.create_topics([NewTopic("candidates", num_partitions=1, replication_factor=1)])
        finally:
            admin.close()
        tansu_keys = [o["Key"] for o in s3.list_objects_v2(Bucket=TANSU_BUCKET)["Contents"]]
    finally:
        stopped = LocalStack(settings).down()  # a fresh instance, as from another shell

    assert [line.split(":")[0] for line in first] == ["seaweedfs", "tansu"]
    assert all("started" in line for line in first), first
    assert all("already running" in line for line in again), again
    assert healthy, lines
    assert stack.s3_endpoint_url in lines[0] and stack.kafka_bootstrap_servers in lines[1]
    assert buckets == {settings.s3_bucket, TANSU_BUCKET}
    assert any("/topics/candidates/" in key for key in tansu_keys), tansu_keys
    assert stopped == [f"tansu: stopped (pid {pids['tansu']})",
                       f"seaweedfs: stopped (pid {pids['seaweedfs']})"]
    assert not ServiceProcess("seaweedfs", pids["seaweedfs"], "weed", Path()).is_running()
    assert not ServiceProcess("tansu", pids["tansu"], "tansu", Path()).is_running()
    assert not list(run_dir.glob("*.pid"))
    weed_sockets = [socket_file for port in stack.seaweed_ports.all_ports().values()
                    for socket_file in Path("/tmp").glob(f"seaweedfs-*-{port}.sock")]
    assert not weed_sockets
    lines, healthy = stack.status()
    assert not healthy
    assert lines == ["seaweedfs: stopped", "tansu: stopped"]


def test_local_stack_names_the_port_that_is_taken(tmp_path):
    settings = _settings_on_free_ports(tmp_path)
    s3_port = settings.config.local_stack.s3_port
    with socket.socket() as squatter:
        squatter.bind((LOOPBACK, s3_port))
        squatter.listen()
        with pytest.raises(StackError, match=rf"127\.0\.0\.1:{s3_port} \(S3\) already in use"):
            LocalStack(settings).up()
    assert not list((settings.coin_home / "run").glob("*.pid"))


def test_local_stack_ignores_stale_pid_files(tmp_path):
    """A pid file whose process is gone, or is now another program, must not be trusted."""
    settings = _settings_on_free_ports(tmp_path)
    finished = subprocess.Popen([sys.executable, "-c", ""])
    finished.wait()
    exited_pid = finished.pid
    run_dir = settings.coin_home / "run"
    run_dir.mkdir(parents=True)
    (run_dir / "seaweedfs.pid").write_text(f"{os.getpid()}\n")  # alive, but not weed
    (run_dir / "tansu.pid").write_text(f"{exited_pid}\n")
    stack = LocalStack(settings)

    lines, healthy = stack.status()
    stopped = stack.down()

    assert not healthy
    assert lines == [f"seaweedfs: stopped (stale pid file for pid {os.getpid()})",
                     f"tansu: stopped (stale pid file for pid {exited_pid})"]
    assert stopped == [f"tansu: not running (removed stale pid file for pid {exited_pid})",
                       f"seaweedfs: not running (removed stale pid file for pid {os.getpid()})"]
    assert not list(run_dir.glob("*.pid"))
