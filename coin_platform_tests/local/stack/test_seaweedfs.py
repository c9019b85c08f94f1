"""SeaweedFS as the local S3, against the real `weed mini`: signed access only, every other port closed."""

from __future__ import annotations

import io
from urllib.parse import urlparse

import grpc
import polars as pl
import pyarrow.parquet as pq
import pytest
import requests
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError
from pyarrow import fs

from coin_platform.local.stack import GRPC_PORT_OFFSET, LOOPBACK

CANDLES = pl.DataFrame({
    "open_time": [1_735_689_600_000, 1_735_689_660_000],
    "close": [93_576.0, 93_612.5],
    "volume": [12.5, 8.25],
})


def _error_code(error: ClientError) -> str:
    return error.response["Error"]["Code"]



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
