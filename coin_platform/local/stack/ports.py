"""Loopback ports: which are free, the ports `weed mini` binds, and refusing a taken one."""

from __future__ import annotations

import socket
from collections.abc import Collection
from dataclasses import dataclass

from coin_platform.local.stack.processes import StackError

LOOPBACK = "127.0.0.1"
GRPC_PORT_OFFSET = 10000


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


def require_free(service: str, ports: dict[str, int], hint: str) -> None:
    taken = [f"{LOOPBACK}:{port} ({what})" for what, port in ports.items() if not port_is_free(port)]
    if taken:
        raise StackError(
            f"cannot start {service}: {', '.join(taken)} already in use by another process; "
            f"stop it or {hint}"
        )


def tcp_accepts(port: int) -> bool:
    try:
        socket.create_connection((LOOPBACK, port), timeout=1).close()
    except OSError:
        return False
    return True
