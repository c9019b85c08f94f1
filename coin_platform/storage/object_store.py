"""Parquet objects under one root — an S3 bucket (SeaweedFS, MinIO, AWS) or a local directory.

Every write is atomic: a single S3 PUT (an object is invisible until its upload
completes), or a temporary file renamed into place on a local disk. Parquet is
written deterministically, so rewriting the same rows gives the same bytes.
Batches of small objects go through a thread pool: each S3 request waits on the
network, not the CPU, and pyarrow releases the GIL while it does.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl
import pyarrow.fs as pafs

if TYPE_CHECKING:
    from coin_platform.settings import Settings

IO_THREADS = 8


class ObjectStore:
    """Keys (relative paths like `ohlcv/1m/BTCUSDT/2024-01-01_00.parquet`) under one root."""

    def __init__(self, filesystem: pafs.FileSystem, root: str, *, uri: str) -> None:
        self.filesystem = filesystem
        self.root = root.rstrip("/")
        self.uri = uri.rstrip("/")
        self._is_local = isinstance(filesystem, pafs.LocalFileSystem)

    @classmethod
    def local(cls, directory: str | Path) -> ObjectStore:
        path = Path(directory).resolve()
        path.mkdir(parents=True, exist_ok=True)
        return cls(pafs.LocalFileSystem(), str(path), uri=str(path))

    @classmethod
    def s3(
        cls,
        bucket: str,
        *,
        endpoint_url: str | None,
        access_key: str | None,
        secret_key: str | None,
        region: str,
        prefix: str = "",
    ) -> ObjectStore:
        options: dict[str, object] = {"region": region}
        if access_key and secret_key:
            options.update(access_key=access_key, secret_key=secret_key)
        if endpoint_url:
            scheme, _, host = endpoint_url.partition("://")
            options.update(endpoint_override=host, scheme=scheme)
        root = f"{bucket}/{prefix.strip('/')}".rstrip("/")
        return cls(pafs.S3FileSystem(**options), root, uri=f"s3://{root}")

    @classmethod
    def from_settings(cls, settings: Settings, *, bucket: str | None = None, prefix: str = "") -> ObjectStore:
        """The settings' bucket (or `bucket`, under `prefix`) with the settings' endpoint, credentials
        and region: the one place an object store is built from settings."""
        secret = settings.aws_secret_access_key
        return cls.s3(
            bucket or settings.s3_bucket,
            endpoint_url=settings.s3_endpoint_url,
            access_key=settings.aws_access_key_id,
            secret_key=secret.get_secret_value() if secret else None,
            region=settings.s3_region,
            prefix=prefix,
        )

    def path(self, key: str) -> str:
        return f"{self.root}/{key}"

    def write_bytes(self, key: str, data: bytes) -> None:
        target = self.path(key)
        if self._is_local:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            temporary = f"{target}.tmp-{uuid.uuid4().hex}"
            with self.filesystem.open_output_stream(temporary) as stream:
                stream.write(data)
            self.filesystem.move(temporary, target)
        else:
            with self.filesystem.open_output_stream(target) as stream:
                stream.write(data)

    def read_bytes(self, key: str) -> bytes:
        with self.filesystem.open_input_stream(self.path(key)) as stream:
            return stream.read()

    def write_parquet(self, key: str, frame: pl.DataFrame) -> int:
        """Write one frame as one zstd parquet object; returns its size in bytes."""
        buffer = io.BytesIO()
        frame.write_parquet(buffer, compression="zstd", statistics=True)
        data = buffer.getvalue()
        self.write_bytes(key, data)
        return len(data)

    def read_parquet(self, key: str) -> pl.DataFrame:
        """One GET for the whole object: these objects are small, and a file-style parquet
        read would spend a request each on the size, the footer and the columns. Polars decodes
        the bytes: 0.44 ms for an hour of 1m candles, where pyarrow's read_table and from_arrow
        took 1.4 ms (measured for bench/warehouse.py)."""
        return pl.read_parquet(self.read_bytes(key))

    def write_parquet_many(self, frames: dict[str, pl.DataFrame]) -> int:
        """Write several objects concurrently; returns the bytes written."""
        with ThreadPoolExecutor(IO_THREADS) as pool:
            return sum(pool.map(self.write_parquet, frames, frames.values()))

    def read_parquet_many(self, keys: Sequence[str]) -> list[pl.DataFrame]:
        """Read several objects concurrently, in the order of `keys`."""
        with ThreadPoolExecutor(IO_THREADS) as pool:
            return list(pool.map(self.read_parquet, keys))

    def exists_many(self, keys: Sequence[str]) -> list[bool]:
        infos = self.filesystem.get_file_info([self.path(key) for key in keys])
        return [info.type == pafs.FileType.File for info in infos]

    def exists(self, key: str) -> bool:
        return self.exists_many([key])[0]

    def list_keys(self, prefix: str) -> list[str]:
        """Keys under a directory-like prefix (e.g. one symbol's interval), sorted."""
        selector = pafs.FileSelector(
            self.path(prefix.rstrip("/")), allow_not_found=True, recursive=True
        )
        start = len(self.root) + 1
        return sorted(
            info.path[start:]
            for info in self.filesystem.get_file_info(selector)
            if info.type == pafs.FileType.File and ".tmp-" not in info.path
        )

    def delete_many(self, keys: Sequence[str]) -> None:
        for key, found in zip(keys, self.exists_many(keys), strict=True):
            if found:
                self.filesystem.delete_file(self.path(key))
