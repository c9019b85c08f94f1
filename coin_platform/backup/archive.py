"""Backups in the object store: `backups/{id}/` holds one object per part and `manifest.json`.

The id is the backup's UTC time (`2026-12-01T030000Z`), so ids sort by age. The manifest is written
last: a backup without one is incomplete and never restored. It lists every object's size and
sha256 (and the seconds its copy and upload took), what each part held (row counts), the parts
left out and why, and the library versions.

A restore downloads every object of the backup and checks its size and sha256 against the
manifest, then stages every part beside its store (unpacked and opened); a missing or corrupted
object fails naming it before anything is replaced. Then each store is swapped in under its lock.

Retention: after a backup succeeded, backups older than `retention_days` before it are deleted
(incomplete ones too); the newest complete backup is never deleted.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import importlib.metadata
import json
import platform
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from coin_platform.backup.parts import BackupError, Part, RestoreRefused
from coin_platform.storage.object_store import ObjectStore

PREFIX = "backups"
MANIFEST = "manifest.json"
FORMAT = 1
_ID_FORMAT = "%Y-%m-%dT%H%M%SZ"
_CHUNK = 1 << 20
_VERSIONED = ("coin_platform", "duckdb", "chdb", "clickhouse-connect", "dagster", "pyarrow", "polars")
# How long a restore waits for a store's lock before refusing: a lock held longer is a running stack or run.
RESTORE_LOCK_TIMEOUT_S = 10.0


class BackupCorrupted(BackupError):
    """An object of the backup is missing or differs from its manifest; nothing was replaced."""


@dataclass(frozen=True)
class BackupResult:
    backup_id: str
    manifest: dict
    bytes: int
    seconds: float
    deleted: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RestoreResult:
    backup_id: str
    restored: list[str]
    bytes: int
    seconds: float


def backup_id(moment: dt.datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError(f"a backup's time is a UTC instant; {moment.isoformat()} has no timezone")
    return moment.astimezone(dt.UTC).strftime(_ID_FORMAT)


def backup_time(backup_id: str) -> dt.datetime:
    try:
        return dt.datetime.strptime(backup_id, _ID_FORMAT).replace(tzinfo=dt.UTC)
    except ValueError:
        raise BackupError(f"{backup_id!r} is not a backup id like 2026-12-01T030000Z") from None


def _key(backup: str, name: str) -> str:
    return f"{PREFIX}/{backup}/{name}"


def _versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _VERSIONED:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[name] = importlib.metadata.version(name)
    return versions


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _upload(store: ObjectStore, key: str, path: Path) -> None:
    with path.open("rb") as reader, store.filesystem.open_output_stream(store.path(key)) as writer:
        while chunk := reader.read(_CHUNK):
            writer.write(chunk)


def _download(store: ObjectStore, key: str, path: Path) -> tuple[int, str]:
    """Stream one object to `path`; returns its size and sha256."""
    digest = hashlib.sha256()
    size = 0
    with store.filesystem.open_input_stream(store.path(key)) as reader, path.open("wb") as writer:
        while chunk := reader.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
            writer.write(chunk)
    return size, digest.hexdigest()


def _is_id(name: str) -> bool:
    try:
        dt.datetime.strptime(name, _ID_FORMAT)
    except ValueError:
        return False
    return True


def _ids(store: ObjectStore) -> dict[str, bool]:
    """Every backup id in the store, oldest first, and whether its manifest is there (other keys under
    `backups/` are not backups and are left alone)."""
    found: dict[str, bool] = {}
    for key in store.list_keys(PREFIX):
        parts = key.split("/")
        if len(parts) == 3 and _is_id(parts[1]):
            found[parts[1]] = found.get(parts[1], False) or parts[2] == MANIFEST
    return dict(sorted(found.items()))


def list_backups(store: ObjectStore) -> list[str]:
    """The complete backups (with a manifest), oldest first."""
    return [backup for backup, complete in _ids(store).items() if complete]


def read_manifest(store: ObjectStore, backup: str) -> dict:
    key = _key(backup, MANIFEST)
    try:
        data = store.read_bytes(key)
    except FileNotFoundError:
        raise BackupError(f"backup {backup} has no manifest ({store.uri}/{key}): it is missing or incomplete") from None
    try:
        manifest = json.loads(data)
    except ValueError as exc:
        raise BackupCorrupted(f"{store.uri}/{key} is not valid JSON: {exc}") from None
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{store.uri}/{key}: manifest format {manifest.get('format')!r}, this version reads {FORMAT}")
    return manifest


def create_backup(
    store: ObjectStore,
    parts: Sequence[Part],
    *,
    retention_days: int,
    now: dt.datetime | None = None,
    staging_dir: Path | None = None,
    left_out: dict[str, str] | None = None,
) -> BackupResult:
    """Back up every part that has something to back up, write the manifest, then apply the retention.
    `left_out` names the stores the deployment does not back up this way, with the reason, for the manifest."""
    started = time.monotonic()
    moment = now or dt.datetime.now(dt.UTC)
    backup = backup_id(moment)
    if backup in _ids(store):
        raise BackupError(f"a backup {backup} already exists in {store.uri}/{PREFIX}")
    included: dict[str, dict] = {}
    excluded: dict[str, str] = dict(left_out or {})
    files = []
    with tempfile.TemporaryDirectory(prefix="coin-backup-", dir=staging_dir) as directory:
        staging = Path(directory)
        for part in parts:
            if reason := part.missing():
                excluded[part.name] = reason
                continue
            part_started = time.monotonic()
            part_staging = staging / part.name
            part_staging.mkdir()
            included[part.name] = part.snapshot(part_staging)
            path = part_staging / part.object_name
            key = _key(backup, part.object_name)
            _upload(store, key, path)
            size, sha256 = path.stat().st_size, _sha256(path)
            seconds = round(time.monotonic() - part_started, 3)
            files.append({"part": part.name, "key": key, "size": size, "sha256": sha256, "seconds": seconds})
            shutil.rmtree(part_staging)
    manifest = {
        "format": FORMAT,
        "id": backup,
        "created_at": moment.astimezone(dt.UTC).isoformat(),
        "included": included,
        "excluded": excluded,
        "files": files,
        "versions": _versions(),
    }
    store.write_bytes(_key(backup, MANIFEST), json.dumps(manifest, indent=2, sort_keys=True).encode())
    deleted = delete_expired(store, retention_days, now=moment)
    return BackupResult(backup, manifest, sum(f["size"] for f in files), time.monotonic() - started, deleted)


def delete_expired(store: ObjectStore, retention_days: int, *, now: dt.datetime) -> list[str]:
    """Delete the backups older than `retention_days` before `now`, keeping the newest complete one;
    returns the ids deleted."""
    if retention_days < 1:
        raise ValueError(f"backup retention_days must be at least 1, not {retention_days}")
    cutoff = now - dt.timedelta(days=retention_days)
    complete = list_backups(store)
    keep = complete[-1] if complete else None
    deleted = []
    for backup in _ids(store):
        if backup != keep and backup_time(backup) < cutoff:
            store.delete_many(store.list_keys(f"{PREFIX}/{backup}"))
            with contextlib.suppress(OSError):  # a local store keeps the emptied directory
                store.filesystem.delete_dir(store.path(f"{PREFIX}/{backup}"))
            deleted.append(backup)
    return deleted


def _fetch(store: ObjectStore, manifest: dict, staging: Path) -> dict[str, Path]:
    """Every object of the backup downloaded and checked against the manifest, by part name."""
    fetched = {}
    for entry in manifest["files"]:
        key = entry["key"]
        where = f"{store.uri}/{key}"
        path = staging / key.rsplit("/", 1)[-1]
        try:
            size, sha256 = _download(store, key, path)
        except FileNotFoundError:
            raise BackupCorrupted(f"backup {manifest['id']}: object {where} is missing") from None
        if size != entry["size"] or sha256 != entry["sha256"]:
            raise BackupCorrupted(
                f"backup {manifest['id']}: object {where} is corrupted ({size} bytes, sha256 {sha256}; "
                f"the manifest says {entry['size']} bytes, sha256 {entry['sha256']})"
            )
        fetched[entry["part"]] = path
    return fetched


def restore_backup(
    store: ObjectStore,
    parts: Sequence[Part],
    backup: str | None = None,
    *,
    staging_dir: Path | None = None,
    lock_timeout_s: float = RESTORE_LOCK_TIMEOUT_S,
) -> RestoreResult:
    """Restore `backup` (default: the newest complete one) into `parts`' stores.

    Every object is verified and every part staged before any store is replaced; then every store's
    lock is taken (or the restore refused) and each staged copy renamed into place.
    """
    started = time.monotonic()
    if backup is None:
        complete = list_backups(store)
        if not complete:
            raise BackupError(f"no backup in {store.uri}/{PREFIX}")
        backup = complete[-1]
    backup_time(backup)  # an id names a backup, never another key
    manifest = read_manifest(store, backup)
    by_name = {part.name: part for part in parts}
    unknown = sorted(set(manifest["included"]) - set(by_name))
    if unknown:
        raise BackupError(f"backup {backup} holds {', '.join(unknown)}, which this deployment has no store for")
    with tempfile.TemporaryDirectory(prefix="coin-restore-", dir=staging_dir) as directory:
        fetched = _fetch(store, manifest, Path(directory))
        staged: dict[str, Path] = {}
        try:
            for name, archive in fetched.items():
                part_staging = Path(directory) / f"{name}-stage"
                part_staging.mkdir()
                staged[name] = by_name[name].stage(archive, part_staging)
            with contextlib.ExitStack() as guards:
                for name in staged:
                    guards.enter_context(by_name[name].guard(lock_timeout_s))
                for name, path in list(staged.items()):
                    by_name[name].commit(path)
                    del staged[name]
        finally:
            for name, path in staged.items():
                by_name[name].discard(path)
    size = sum(entry["size"] for entry in manifest["files"])
    return RestoreResult(backup, list(fetched), size, time.monotonic() - started)


__all__ = [
    "BackupCorrupted",
    "BackupError",
    "BackupResult",
    "RestoreRefused",
    "RestoreResult",
    "backup_id",
    "create_backup",
    "delete_expired",
    "list_backups",
    "read_manifest",
    "restore_backup",
]
