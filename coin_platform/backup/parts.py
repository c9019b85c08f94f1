"""The parts of a backup: one per store, each copied consistently and put back atomically.

Every part turns its store into one zstd-compressed file (`snapshot`) and back (`stage`, then
`commit`). A restore stages every part beside its store first (decompressed, opened and checked),
so a bad backup fails before anything is replaced; only then does it take each store's lock and
swap the staged copy in with a rename.

- DuckDB files (the trading store, the warehouse): copied while holding the store's writer lock
  (no writer has the file open then; a WAL a crashed writer left is copied along and replayed into
  the copy), so the copy is one checkpointed file.
- The chDB hot store: ClickHouse's own `BACKUP DATABASE … TO File(…)` under the path's lock (chDB
  needs `backups.allowed_path` in a config file; its build has no zip support, so the backup is a
  directory, packed here as tar), and `RESTORE DATABASE` into a new directory that replaces the old.
- The Dagster instance: sqlite files through sqlite3's online backup API; PostgreSQL through
  `pg_dump --format=custom` and `pg_restore --single-transaction --clean`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import sqlite3
import subprocess
import tarfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import duckdb
import filelock
import pyarrow as pa
import yaml

from coin_platform.storage.clickhouse import ClickHouseConfig, open_clickhouse

_CHUNK = 1 << 20
_SQLITE_HEADER = b"SQLite format 3\x00"
# A daemon heartbeat younger than this means Dagster is running against the instance (it beats every 30 s).
DAEMON_ALIVE_S = 90.0


class BackupError(RuntimeError):
    """A backup or restore could not be done; the message says which store and why."""


class RestoreRefused(BackupError):
    """Something still uses a store (its lock is held, or the Dagster daemon is running): nothing was replaced."""


def compress(source: Path, target: Path) -> None:
    with pa.OSFile(str(source), "rb") as reader, pa.CompressedOutputStream(str(target), "zstd") as writer:
        while chunk := reader.read(_CHUNK):
            writer.write(chunk)


def decompress(source: Path, target: Path) -> None:
    with pa.input_stream(str(source), compression="zstd") as reader, target.open("wb") as writer:
        while chunk := reader.read(_CHUNK):
            writer.write(chunk)


def pack(directory: Path, target: Path) -> None:
    """The directory's contents as one zstd-compressed tar."""
    with pa.CompressedOutputStream(str(target), "zstd") as writer, tarfile.open(fileobj=writer, mode="w|") as tar:
        for path in sorted(directory.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(directory)), recursive=False)


def unpack(source: Path, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    with pa.input_stream(str(source), compression="zstd") as reader, tarfile.open(fileobj=reader, mode="r|") as tar:
        tar.extractall(directory, filter="data")


@contextlib.contextmanager
def hold_lock(lock_path: Path, timeout_s: float, what: str, *, refusing: bool) -> Iterator[None]:
    """Hold a store's file lock for the block; waiting longer than `timeout_s` fails naming the lock
    (and its holder file, when the store keeps one) — as RestoreRefused when `refusing`."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(lock_path, timeout=timeout_s)
    try:
        lock.acquire()
    except filelock.Timeout:
        holder = Path(f"{lock_path}.holder")
        held_by = holder.read_text().strip() if holder.exists() else ""  # empty: the holder keeps none
        error = RestoreRefused if refusing else BackupError
        raise error(
            f"{what}: lock {lock_path} stayed held for {timeout_s:g} s{f' by {held_by}' if held_by else ''}; "
            "stop what uses it (coin dev, a running run) and try again"
        ) from None
    holder = Path(f"{lock_path}.holder")
    keeps_holder = holder.exists()  # the warehouse and chDB say who holds their lock, for whoever waits
    try:
        if keeps_holder:
            since = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
            holder.write_text(f"{'restore' if refusing else 'backup'}: pid {os.getpid()} since {since}\n")
        yield
    finally:
        if keeps_holder:
            with contextlib.suppress(OSError):
                holder.write_text("")
        lock.release()


class Part(Protocol):
    """One store in a backup."""

    name: str
    # The file name of the part's object in a backup.
    object_name: str

    def missing(self) -> str | None:
        """Why there is nothing to back up (e.g. no file yet), or None."""

    def snapshot(self, staging: Path) -> dict[str, object]:
        """Write the part's object as `staging / object_name`; returns what it holds, for the manifest."""

    def stage(self, archive: Path, staging: Path) -> Path:
        """Unpack the object beside the store, checked; nothing of the store is replaced yet."""

    def guard(self, timeout_s: float) -> contextlib.AbstractContextManager[None]:
        """Held while the staged copy is swapped in: the store's lock, or a check that nothing runs on it."""

    def commit(self, staged: Path) -> None:
        """Replace the store by the staged copy (inside `guard`)."""

    def discard(self, staged: Path) -> None:
        """Remove a staged copy that was not committed."""


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _duckdb_tables(path: Path) -> dict[str, int]:
    connection = duckdb.connect(str(path), read_only=True)
    try:
        tables = connection.execute(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' "
            "ORDER BY 1, 2"
        ).fetchall()
        return {
            f"{schema}.{name}": connection.execute(f'SELECT count(*) FROM "{schema}"."{name}"').fetchall()[0][0]
            for schema, name in tables
        }
    finally:
        connection.close()


@dataclass(frozen=True)
class DuckDBFilePart:
    """A DuckDB file written under a file lock (`TradingStore`, `DuckDBWarehouse`)."""

    name: str
    path: Path
    lock_path: Path
    lock_timeout_s: float = 600.0

    @property
    def object_name(self) -> str:
        return f"{self.name}.duckdb.zst"

    @property
    def _wal(self) -> Path:
        return Path(f"{self.path}.wal")

    def missing(self) -> str | None:
        return None if self.path.exists() else f"no DuckDB file at {self.path}"

    def snapshot(self, staging: Path) -> dict[str, object]:
        copy = staging / f"{self.name}.duckdb"
        with hold_lock(self.lock_path, self.lock_timeout_s, f"{self.name} {self.path}", refusing=False):
            shutil.copyfile(self.path, copy)
            if self._wal.exists():
                shutil.copyfile(self._wal, f"{copy}.wal")
        connection = duckdb.connect(str(copy))  # replays a copied WAL into the copy
        connection.execute("CHECKPOINT")
        connection.close()
        tables = _duckdb_tables(copy)
        compress(copy, staging / self.object_name)
        copy.unlink()
        return {"path": str(self.path), "tables": tables}

    def stage(self, archive: Path, staging: Path) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        staged = self.path.parent / f".{self.path.name}.restore-{uuid.uuid4().hex[:8]}"
        decompress(archive, staged)
        try:
            _duckdb_tables(staged)
        except duckdb.Error as exc:
            self.discard(staged)
            raise BackupError(f"{self.name}: the backed-up DuckDB file does not open: {exc}") from None
        return staged

    def guard(self, timeout_s: float) -> contextlib.AbstractContextManager[None]:
        return hold_lock(self.lock_path, timeout_s, f"{self.name} {self.path}", refusing=True)

    def commit(self, staged: Path) -> None:
        self._wal.unlink(missing_ok=True)  # a WAL left beside would be replayed onto the restored file
        os.replace(staged, self.path)

    def discard(self, staged: Path) -> None:
        _remove(staged)
        _remove(Path(f"{staged}.wal"))


def _chdb_options(allowed: Path) -> dict[str, str]:
    """Engine options that let chDB write and read backups under `allowed` (its `File` backup engine)."""
    config = allowed / "chdb-backups.xml"
    config.write_text(
        f"<clickhouse><backups><allowed_path>{allowed.resolve()}/</allowed_path></backups></clickhouse>\n"
    )
    return {"config-file": str(config)}


@dataclass(frozen=True)
class ChDBPart:
    """The local hot store: one chDB directory, one database."""

    config: ClickHouseConfig
    name: str = "hot_store"
    object_name: str = "hot_store.tar.zst"

    @property
    def path(self) -> Path:
        return Path(self.config.path).resolve()

    def missing(self) -> str | None:
        return (
            None
            if (self.path / "metadata" / f"{self.config.database}.sql").exists()
            else (f"no chDB database {self.config.database} at {self.path}")
        )

    def snapshot(self, staging: Path) -> dict[str, object]:
        target = staging / "hot_store"
        with open_clickhouse(self.config, chdb_options=_chdb_options(staging)) as client:
            client.command(f"BACKUP DATABASE {self.config.database} TO File('{target}')")
            tables = _chdb_rows(client, self.config.database)
        pack(target, staging / self.object_name)
        shutil.rmtree(target)
        return {"path": str(self.path), "database": self.config.database, "tables": tables}

    def stage(self, archive: Path, staging: Path) -> Path:
        source = staging / "hot_store"
        unpack(archive, source)
        staged = self.path.parent / f".{self.path.name}.restore-{uuid.uuid4().hex[:8]}"
        config = ClickHouseConfig(mode="chdb", path=str(staged), database=self.config.database)
        try:
            with open_clickhouse(config, chdb_options=_chdb_options(staging)) as client:
                client.command(f"RESTORE DATABASE {self.config.database} FROM File('{source}')")
                _chdb_rows(client, self.config.database)
        except Exception as exc:
            self.discard(staged)
            raise BackupError(f"{self.name}: chDB could not restore the backup: {exc}") from None
        finally:
            _remove(Path(config.lock_path))
            _remove(Path(f"{config.lock_path}.holder"))
            shutil.rmtree(source, ignore_errors=True)
        return staged

    def guard(self, timeout_s: float) -> contextlib.AbstractContextManager[None]:
        return hold_lock(Path(self.config.lock_path), timeout_s, f"{self.name} {self.path}", refusing=True)

    def commit(self, staged: Path) -> None:
        """Two renames under the lock: the old directory aside, the restored one in its place."""
        old = self.path.parent / f".{self.path.name}.replaced-{uuid.uuid4().hex[:8]}"
        if self.path.exists():
            os.replace(self.path, old)
        os.replace(staged, self.path)
        _remove(old)

    def discard(self, staged: Path) -> None:
        _remove(staged)


def _chdb_rows(client, database: str) -> dict[str, int]:
    rows = client.query(
        "SELECT name, total_rows FROM system.tables WHERE database = {db:String} AND total_rows IS NOT NULL "
        "ORDER BY name",
        parameters={"db": database},
    ).result_rows
    return {name: int(count) for name, count in rows}


def _resolve(value: object, environ: dict[str, str]) -> str | None:
    """A dagster.yaml value: literal, or `{env: NAME}` read from the environment."""
    if isinstance(value, dict) and set(value) == {"env"}:
        return environ.get(value["env"])
    return None if value is None else str(value)


@dataclass(frozen=True)
class PostgresTarget:
    host: str
    port: int
    user: str
    password: str | None
    database: str

    def environment(self) -> dict[str, str]:
        """libpq's variables: the password never appears on a command line."""
        values = {"PGHOST": self.host, "PGPORT": str(self.port), "PGUSER": self.user, "PGDATABASE": self.database}
        return {**os.environ, **values, **({"PGPASSWORD": self.password} if self.password else {})}


def instance_storage(dagster_home: Path, environ: dict[str, str] | None = None) -> PostgresTarget | Path:
    """Where the Dagster instance of `dagster_home` keeps runs and events: PostgreSQL (`storage: postgres:`
    in its dagster.yaml, as deploy/dagster.yaml has it), else the sqlite base directory."""
    environ = dict(os.environ) if environ is None else environ
    config_file = dagster_home / "dagster.yaml"
    config = (yaml.safe_load(config_file.read_text()) or {}) if config_file.exists() else {}
    storage = config.get("storage") or {}
    if "postgres" in storage:
        postgres = storage["postgres"] or {}
        if "postgres_url" in postgres:
            raise BackupError(
                f"{config_file}: storage.postgres.postgres_url is not supported by backups; use postgres_db"
            )
        db = postgres.get("postgres_db") or {}
        keys = ("hostname", "port", "username", "password", "db_name")
        fields = {key: _resolve(db.get(key), environ) for key in keys}
        absent = [key for key in ("hostname", "username", "db_name") if not fields[key]]
        if absent:
            raise BackupError(f"{config_file}: storage.postgres.postgres_db has no value for {', '.join(absent)}")
        return PostgresTarget(
            host=fields["hostname"],
            port=int(fields["port"] or 5432),
            user=fields["username"],
            password=fields["password"] or None,
            database=fields["db_name"],
        )
    base = (storage.get("sqlite") or {}).get("base_dir")
    return Path(_resolve(base, environ)) if base else dagster_home


def _sqlite_files(base: Path) -> list[Path]:
    found = []
    for path in sorted(base.rglob("*.db")):
        if ".restore-" in str(path.relative_to(base)) or not path.is_file():
            continue
        with path.open("rb") as handle:
            if handle.read(len(_SQLITE_HEADER)) == _SQLITE_HEADER:
                found.append(path)
    return found


def _last_heartbeat_sqlite(base: Path) -> dt.datetime | None:
    runs = base / "history" / "runs.db"
    if not runs.exists():
        return None
    connection = sqlite3.connect(f"file:{runs}?mode=ro", uri=True)
    try:
        row = connection.execute("SELECT max(timestamp) FROM daemon_heartbeats").fetchone()
    except sqlite3.OperationalError:  # an instance whose daemon never ran has no such table yet
        return None
    finally:
        connection.close()
    return dt.datetime.fromisoformat(row[0]).replace(tzinfo=dt.UTC) if row and row[0] else None


def _refuse_if_daemon_alive(last: dt.datetime | None, where: str) -> None:
    if last is not None and (dt.datetime.now(dt.UTC) - last).total_seconds() < DAEMON_ALIVE_S:
        raise RestoreRefused(
            f"the Dagster daemon of {where} is running (last heartbeat {last.isoformat(timespec='seconds')}); "
            "stop coin dev / the daemon before restoring"
        )


@dataclass(frozen=True)
class DagsterSqlitePart:
    """A local Dagster instance: every sqlite file under its base directory (runs, event logs, schedules)."""

    base_dir: Path
    name: str = "dagster"
    object_name: str = "dagster_sqlite.tar.zst"

    def missing(self) -> str | None:
        return None if _sqlite_files(self.base_dir) else f"no Dagster sqlite storage under {self.base_dir}"

    def snapshot(self, staging: Path) -> dict[str, object]:
        copies = staging / "dagster"
        files = []
        for source in _sqlite_files(self.base_dir):
            relative = source.relative_to(self.base_dir)
            (copies / relative).parent.mkdir(parents=True, exist_ok=True)
            reader = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
            writer = sqlite3.connect(copies / relative)
            try:
                reader.backup(writer)
            finally:
                writer.close()
                reader.close()
            files.append(str(relative))
        pack(copies, staging / self.object_name)
        shutil.rmtree(copies)
        return {"storage": "sqlite", "base_dir": str(self.base_dir), "files": files}

    def stage(self, archive: Path, staging: Path) -> Path:
        staged = self.base_dir / f".restore-{uuid.uuid4().hex[:8]}"
        unpack(archive, staged)
        for path in _sqlite_files(staged):
            connection = sqlite3.connect(path)
            try:
                (result,) = connection.execute("PRAGMA quick_check").fetchone()
            finally:
                connection.close()
            if result != "ok":
                self.discard(staged)
                raise BackupError(f"{self.name}: {path.relative_to(staged)} fails sqlite's check: {result}")
        return staged

    @contextlib.contextmanager
    def guard(self, timeout_s: float) -> Iterator[None]:
        _refuse_if_daemon_alive(_last_heartbeat_sqlite(self.base_dir), str(self.base_dir))
        yield

    def commit(self, staged: Path) -> None:
        """Each file renamed into place; files of the instance the backup did not have (runs started after it)
        are removed, so the instance is the one backed up."""
        restored = {path.relative_to(staged) for path in _sqlite_files(staged)}
        for relative in sorted(restored):
            target = self.base_dir / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            for suffix in ("-wal", "-shm", "-journal"):
                Path(f"{target}{suffix}").unlink(missing_ok=True)
            os.replace(staged / relative, target)
        for path in _sqlite_files(self.base_dir):
            if path.relative_to(self.base_dir) not in restored:
                path.unlink()
        shutil.rmtree(staged)

    def discard(self, staged: Path) -> None:
        _remove(staged)


def _run_tool(command: list[str], target: PostgresTarget, what: str) -> str:
    if shutil.which(command[0]) is None:
        raise BackupError(f"{what}: {command[0]} is not on PATH (install the PostgreSQL client tools)")
    result = subprocess.run(command, env=target.environment(), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BackupError(f"{what}: {command[0]} failed: {result.stderr.strip()}")
    return result.stdout


@dataclass(frozen=True)
class DagsterPostgresPart:
    """A Dagster instance on PostgreSQL: one `pg_dump` custom-format archive (compressed by pg_dump)."""

    target: PostgresTarget
    name: str = "dagster"
    object_name: str = "dagster_postgres.dump"

    def missing(self) -> str | None:
        return None

    def snapshot(self, staging: Path) -> dict[str, object]:
        _run_tool(
            ["pg_dump", "--format=custom", "--no-owner", f"--file={staging / self.object_name}"], self.target, self.name
        )
        version = _run_tool(["pg_dump", "--version"], self.target, self.name).strip()
        return {
            "storage": "postgres",
            "host": self.target.host,
            "port": self.target.port,
            "database": self.target.database,
            "pg_dump": version,
        }

    def stage(self, archive: Path, staging: Path) -> Path:
        _run_tool(["pg_restore", "--list", str(archive)], self.target, f"{self.name} (reading the dump)")
        return archive

    def _psql(self, sql: str) -> str:
        command = ["psql", "--no-psqlrc", "--tuples-only", "--no-align", "--command", sql]
        return _run_tool(command, self.target, self.name).strip()

    @contextlib.contextmanager
    def guard(self, timeout_s: float) -> Iterator[None]:
        last = ""
        if self._psql("SELECT to_regclass('daemon_heartbeats') IS NOT NULL") == "t":
            last = self._psql("SELECT max(timestamp) FROM daemon_heartbeats")
        _refuse_if_daemon_alive(
            dt.datetime.fromisoformat(last).replace(tzinfo=dt.UTC) if last else None,
            f"postgres {self.target.host}:{self.target.port}/{self.target.database}",
        )
        yield

    def commit(self, staged: Path) -> None:
        """One transaction: the dump's tables dropped and recreated, or nothing changed."""
        _run_tool(
            [
                "pg_restore",
                "--clean",
                "--if-exists",
                "--no-owner",
                "--single-transaction",
                f"--dbname={self.target.database}",
                str(staged),
            ],
            self.target,
            self.name,
        )

    def discard(self, staged: Path) -> None:
        """The dump stays where it was downloaded; the restore's staging directory goes with it."""


def dagster_part(dagster_home: Path, environ: dict[str, str] | None = None) -> Part:
    storage = instance_storage(dagster_home, environ)
    return DagsterPostgresPart(storage) if isinstance(storage, PostgresTarget) else DagsterSqlitePart(storage)
