"""The warehouse: the raw tables of `warehouse_tables.RAW_TABLES`, a DuckDB file locally, Snowflake in prod.

One interface (`Warehouse`) with the three things its users need: create the raw tables if missing
(DDL generated from the polars schemas, per dialect), replace one partition of a table
(`load_partition`), and read (`query`, for dbt checks and the ML readers).

A partition is the rows of one table whose `day_column` falls on one UTC day, and, when given, whose
`symbol` is one symbol. `load_partition` checks the frame first (exactly the table's columns and
types, every row inside the partition, no key twice) and refuses it with an error naming the column
before anything is written; then it deletes the partition's rows and inserts the frame's in one
transaction, so a reader sees the old partition or the new one, and a rerun leaves the same rows.

DuckDB allows one writing process per file, and a process that holds the file open (even read-only)
keeps every other process from writing it. So, as the hot store does for chDB, writers are
serialised by a file lock held around open → load → close, with a holder file that says who holds
it (a writer that waits longer than `lock_timeout_s` fails naming the holder), and the file is open
only for the load itself. Readers take no lock: `query` opens the file read-only for one statement,
and while a writer has it open it retries until `lock_timeout_s` (loads take seconds).

Snowflake: the frame is written as one parquet file onto a stage (an external stage on the object
store in prod, `{prefix}/{table}/{day}[/{symbol}].parquet`; an internal stage by PUT otherwise),
and `COPY INTO … MATCH_BY_COLUMN_NAME` loads it inside the transaction that deleted the partition
(FORCE, so a rerun of the same file loads again; PURGE, so the stage keeps nothing). Connections come
from the caller (the Dagster layer hands dagster-snowflake's, key-pair authenticated).
"""

from __future__ import annotations

import abc
import contextlib
import datetime as dt
import os
import socket
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import duckdb
import filelock
import polars as pl

from coin_platform.storage.layout import day_start
from coin_platform.storage.object_store import ObjectStore
from coin_platform.storage.warehouse_tables import RAW_SCHEMA, RAW_TABLES, RawTable

Dialect = Literal["duckdb", "snowflake"]
# The external stage over the object store's bucket (prod), where loads and the Snowpipes read.
EXTERNAL_STAGE = f"{RAW_SCHEMA}.coin_objects"
# Where on that stage the loaders put each partition's parquet file.
STAGE_PREFIX = "warehouse"
INTERNAL_STAGE = f"{RAW_SCHEMA}.load_stage"
_RETRY_S = 0.05


class WarehouseSchemaError(ValueError):
    """A frame does not fit the raw table it was meant for; nothing was written."""


class WarehouseLocked(TimeoutError):
    """The DuckDB file stayed held by another writer (or a reader) for longer than the timeout."""


def raw_table(name: str) -> RawTable:
    try:
        return RAW_TABLES[name]
    except KeyError:
        raise WarehouseSchemaError(f"{name!r} is not a raw warehouse table ({', '.join(RAW_TABLES)})") from None


def _column_type(dtype: pl.DataType, dialect: Dialect) -> str:
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone != "UTC":
            raise WarehouseSchemaError(f"timestamps are UTC in the warehouse, not {dtype}")
        return "TIMESTAMPTZ" if dialect == "duckdb" else "TIMESTAMP_TZ(3)"
    names = {
        pl.String: ("VARCHAR", "VARCHAR"),
        pl.Float64: ("DOUBLE", "FLOAT"),
        pl.Int64: ("BIGINT", "BIGINT"),
        pl.Int32: ("INTEGER", "INTEGER"),
        pl.Boolean: ("BOOLEAN", "BOOLEAN"),
    }
    for polars_type, (duck, snow) in names.items():
        if isinstance(dtype, polars_type):
            return duck if dialect == "duckdb" else snow
    raise WarehouseSchemaError(f"no warehouse column type for {dtype}")


def create_table_sql(table: RawTable, dialect: Dialect) -> str:
    """`CREATE TABLE IF NOT EXISTS raw.{name}` with the table's columns in order, typed for `dialect`."""
    columns = ",\n    ".join(f"{name} {_column_type(dtype, dialect)}" for name, dtype in table.columns.items())
    return f"CREATE TABLE IF NOT EXISTS {RAW_SCHEMA}.{table.name} (\n    {columns}\n)"


def partition_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = day_start(day)
    return start, start + dt.timedelta(days=1)


def partition_name(table: RawTable, day: dt.date, symbol: str | None) -> str:
    return f"{table.name} {day.isoformat()}" + (f" {symbol}" if symbol else "")


def check_partition(table: RawTable, frame: pl.DataFrame, day: dt.date, symbol: str | None) -> pl.DataFrame:
    """`frame` with the table's columns in order, or WarehouseSchemaError naming what does not fit."""
    where = partition_name(table, day, symbol)
    missing = [c for c in table.columns if c not in frame.columns]
    extra = [c for c in frame.columns if c not in table.columns]
    if missing or extra:
        raise WarehouseSchemaError(f"{where}: columns missing {missing}, not in the table {extra}")
    for name, dtype in table.columns.items():
        if frame.schema[name] != dtype:
            raise WarehouseSchemaError(f"{where}: column {name} is {frame.schema[name]}, the table has {dtype}")
    if symbol is not None:
        if "symbol" not in table.columns:
            raise WarehouseSchemaError(f"{where}: table {table.name} has no symbol column to partition by")
        if (others := frame.filter(pl.col("symbol") != symbol).height) or frame["symbol"].null_count():
            raise WarehouseSchemaError(f"{where}: column symbol holds {others} row(s) of other symbols or nulls")
    start, end = partition_bounds(day)
    day_values = pl.col(table.day_column)
    outside = frame.filter(day_values.is_null() | (day_values < start) | (day_values >= end)).height
    if outside:
        raise WarehouseSchemaError(f"{where}: column {table.day_column} puts {outside} row(s) outside {day}")
    if frame.select(table.key).is_duplicated().any():
        raise WarehouseSchemaError(f"{where}: key ({', '.join(table.key)}) repeats within the frame")
    return frame.select(list(table.columns))


def _partition_filter(table: RawTable, symbol: str | None, placeholder: Callable[[str], str]) -> str:
    condition = f"{table.day_column} >= {placeholder('start')} AND {table.day_column} < {placeholder('end')}"
    return condition + (f" AND symbol = {placeholder('symbol')}" if symbol is not None else "")


class Warehouse(abc.ABC):
    """The raw tables of one deployment's warehouse."""

    dialect: Dialect

    @abc.abstractmethod
    def create_raw_tables(self) -> list[str]:
        """Create the raw schema and every raw table that is missing; returns the tables' names."""

    def load_partition(self, table: str, frame: pl.DataFrame, day: dt.date, symbol: str | None = None) -> int:
        """Replace the partition (table, day[, symbol]) with `frame`'s rows in one transaction; returns
        the rows loaded. A frame that does not fit raises WarehouseSchemaError and writes nothing."""
        return self.load_partitions(table, [(frame, day, symbol)])[0]

    @abc.abstractmethod
    def load_partitions(self, table: str, partitions: Iterable[tuple[pl.DataFrame, dt.date, str | None]]) -> list[int]:
        """`load_partition` for each (frame, day, symbol) in turn over one connection (a run's many days
        pay for one open). DuckDB replaces them all in one transaction (a frame refused midway leaves
        every partition as it was); Snowflake commits each partition on its own (one COPY each), so
        a refused frame leaves the ones before it loaded and nothing of itself. Returns the rows loaded
        per partition."""

    @abc.abstractmethod
    def query(self, sql: str) -> pl.DataFrame:
        """The result of one read-only statement: columns named in lower case, timestamps in UTC."""

    def exclusive(self, holder: str = "") -> contextlib.AbstractContextManager[None]:
        """Hold off the other writers for the block, for a writer outside this class (a dbt run). Only a
        DuckDB file needs it; Snowflake serialises its own transactions."""
        return contextlib.nullcontext()


def _as_read(frame: pl.DataFrame) -> pl.DataFrame:
    """Column names lower case (Snowflake upper-cases them) and zoned timestamps in UTC, whatever the
    session's zone was; the unit is the engine's (microseconds in DuckDB)."""
    zoned = [name for name, dtype in frame.schema.items() if isinstance(dtype, pl.Datetime) and dtype.time_zone]
    return frame.with_columns(pl.col(zoned).dt.convert_time_zone("UTC")).rename(str.lower)


def _holder_text(holder: str) -> str:
    since = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return f"{holder + ', ' if holder else ''}pid {os.getpid()} on {socket.gethostname()} since {since}\n"


class DuckDBWarehouse(Warehouse):
    """The local warehouse: one DuckDB file, written by one process at a time (see the module docstring)."""

    dialect: Dialect = "duckdb"

    def __init__(
        self, path: str | Path, *, lock_timeout_s: float = 600.0, config: dict[str, Any] | None = None, holder: str = ""
    ):
        """`holder` says who this process is (a run, a tool) in the lock's holder file, for whoever waits."""
        self.path = Path(path)
        self.holder = holder
        self.lock_path = Path(f"{self.path}.lock")
        self.holder_path = Path(f"{self.path}.lock.holder")
        self.lock_timeout_s = lock_timeout_s
        self.config = dict(config or {})

    def __repr__(self) -> str:
        return f"DuckDBWarehouse({str(self.path)!r})"

    def _holder(self, doing: str) -> str:
        return f"{self.holder}: {doing}" if self.holder else doing

    @contextlib.contextmanager
    def exclusive(self, holder: str = "") -> Iterator[None]:
        """Hold the writers' lock for the block (a dbt run on the file takes it too); `holder` says who."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = filelock.FileLock(self.lock_path, timeout=self.lock_timeout_s)
        try:
            lock.acquire()
        except filelock.Timeout:
            try:
                held_by = self.holder_path.read_text().strip() or "unknown"
            except OSError:
                held_by = "unknown"
            raise WarehouseLocked(
                f"warehouse {self.path} stayed locked for {self.lock_timeout_s:g} s by another writer "
                f"(lock file {self.lock_path}, held by {held_by})"
            ) from None
        try:
            self.holder_path.write_text(_holder_text(holder))
            yield
        finally:
            with contextlib.suppress(OSError):
                self.holder_path.write_text("")
            lock.release()

    @contextlib.contextmanager
    def writer(self, holder: str = "") -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-write connection for the block, under the writers' lock; closed before the lock is released."""
        with self.exclusive(holder):
            connection = self._connect(read_only=False)
            try:
                yield connection
            finally:
                connection.close()

    @contextlib.contextmanager
    def reader(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-only connection for the block (keep it short: while it is open no process can write)."""
        if not self.path.exists():
            raise FileNotFoundError(f"warehouse {self.path} does not exist yet: no load has created it")
        connection = self._connect(read_only=True)
        try:
            yield connection
        finally:
            connection.close()

    def _connect(self, *, read_only: bool) -> duckdb.DuckDBPyConnection:
        """Open the file, waiting while another process holds it (DuckDB's error names that process)."""
        deadline = time.monotonic() + self.lock_timeout_s
        while True:
            try:
                connection = duckdb.connect(str(self.path), read_only=read_only, config=self.config)
                break
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower():
                    raise
                if time.monotonic() >= deadline:
                    raise WarehouseLocked(
                        f"warehouse {self.path} stayed open in another process for {self.lock_timeout_s:g} s: {exc}"
                    ) from None
                time.sleep(_RETRY_S)
        connection.execute("SET TimeZone = 'UTC'")
        return connection

    def create_raw_tables(self) -> list[str]:
        with self.writer(self._holder("create raw tables")) as connection:
            self._create(connection)
        return list(RAW_TABLES)

    @staticmethod
    def _create(connection: duckdb.DuckDBPyConnection) -> None:
        connection.execute(f"CREATE SCHEMA IF NOT EXISTS {RAW_SCHEMA}")
        for table in RAW_TABLES.values():
            connection.execute(create_table_sql(table, "duckdb"))

    def load_partitions(self, table: str, partitions: Iterable[tuple[pl.DataFrame, dt.date, str | None]]) -> list[int]:
        """Every partition checked first, then in one transaction each one's rows deleted and all the new
        rows inserted in one INSERT (one statement per partition cost 8 ms a day of 1m candles)."""
        raw = raw_table(table)
        checked = [(check_partition(raw, frame, day, symbol), day, symbol) for frame, day, symbol in partitions]
        if not checked:
            return []
        with self.writer(self._holder(f"load {raw.name}")) as connection:
            self._create(connection)
            connection.execute("BEGIN TRANSACTION")
            try:
                for _, day, symbol in checked:
                    start, end = partition_bounds(day)
                    parameters = {"start": start, "end": end} | ({"symbol": symbol} if symbol is not None else {})
                    where = _partition_filter(raw, symbol, lambda name: "$" + name)
                    connection.execute(f"DELETE FROM {RAW_SCHEMA}.{raw.name} WHERE {where}", parameters)
                connection.register("incoming_rows", pl.concat([rows for rows, _, _ in checked]).to_arrow())
                try:
                    connection.execute(
                        f"INSERT INTO {RAW_SCHEMA}.{raw.name} ({', '.join(raw.columns)}) "
                        f"SELECT {', '.join(raw.columns)} FROM incoming_rows"
                    )
                finally:
                    connection.unregister("incoming_rows")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
        return [rows.height for rows, _, _ in checked]

    def query(self, sql: str) -> pl.DataFrame:
        with self.reader() as connection:
            frame = pl.from_arrow(connection.sql(sql).to_arrow_table())
        return _as_read(frame)


@dataclass(frozen=True)
class SnowflakeStage:
    """Where load files go: the external stage over the object store (`store` given), else an internal
    stage written by PUT."""

    name: str = INTERNAL_STAGE
    store: ObjectStore | None = None
    url: str | None = None  # external: the stage's location, e.g. s3://bucket/
    storage_integration: str | None = None
    prefix: str = STAGE_PREFIX

    def create_sql(self) -> str:
        location = ""
        if self.store is not None:
            if not self.url:
                raise ValueError(f"external stage {self.name} needs the URL of the object store it reads")
            location = f" URL = '{self.url}'" + (
                f" STORAGE_INTEGRATION = {self.storage_integration}" if self.storage_integration else ""
            )
        return f"CREATE STAGE IF NOT EXISTS {self.name}{location} FILE_FORMAT = (TYPE = PARQUET)"


Connect = Callable[[], contextlib.AbstractContextManager[Any]]


class SnowflakeWarehouse(Warehouse):
    """Snowflake through a snowflake-connector-python connection from `connect` (see the module docstring)."""

    dialect: Dialect = "snowflake"

    def __init__(self, connect: Connect, stage: SnowflakeStage | None = None) -> None:
        self._connect = connect
        self.stage = stage or SnowflakeStage()

    def __repr__(self) -> str:
        return f"SnowflakeWarehouse(stage={self.stage.name!r})"

    def create_raw_tables(self) -> list[str]:
        with self._connect() as connection:
            self._create(connection.cursor())
        return list(RAW_TABLES)

    def _create(self, cursor) -> None:
        cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {RAW_SCHEMA}")
        cursor.execute(self.stage.create_sql())
        for table in RAW_TABLES.values():
            cursor.execute(create_table_sql(table, "snowflake"))

    def _stage_path(self, raw: RawTable, day: dt.date, symbol: str | None) -> str:
        return "/".join([self.stage.prefix, raw.name, day.isoformat(), *([symbol] if symbol else [])])

    def load_partitions(self, table: str, partitions: Iterable[tuple[pl.DataFrame, dt.date, str | None]]) -> list[int]:
        raw = raw_table(table)
        loaded: list[int] = []
        with self._connect() as connection, tempfile.TemporaryDirectory() as directory:
            cursor = connection.cursor()
            self._create(cursor)
            for frame, day, symbol in partitions:
                rows = check_partition(raw, frame, day, symbol)
                local = Path(directory) / "part.parquet"
                rows.write_parquet(local)
                loaded.append(self._replace(cursor, raw, rows.height, local, day, symbol))
        return loaded

    def _replace(self, cursor, raw: RawTable, rows: int, local: Path, day: dt.date, symbol: str | None) -> int:
        path = self._stage_path(raw, day, symbol)
        if self.stage.store is not None:
            self.stage.store.write_bytes(f"{path}/part.parquet", local.read_bytes())
        else:
            target = f"@{self.stage.name}/{path}/"
            cursor.execute(f"PUT 'file://{local}' {target} OVERWRITE = TRUE AUTO_COMPRESS = FALSE")
        start, end = partition_bounds(day)
        parameters = {"start": start, "end": end} | ({"symbol": symbol} if symbol is not None else {})
        cursor.execute("BEGIN")
        try:
            cursor.execute(
                f"DELETE FROM {RAW_SCHEMA}.{raw.name} WHERE {_partition_filter(raw, symbol, lambda n: f'%({n})s')}",
                parameters,
            )
            if rows:
                cursor.execute(
                    f"COPY INTO {RAW_SCHEMA}.{raw.name} FROM @{self.stage.name}/{path}/ "
                    "FILE_FORMAT = (TYPE = PARQUET) MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE "
                    "FORCE = TRUE PURGE = TRUE"
                )
        except BaseException:
            cursor.execute("ROLLBACK")
            raise
        cursor.execute("COMMIT")
        return rows

    def query(self, sql: str) -> pl.DataFrame:
        with self._connect() as connection:
            frame = pl.from_arrow(connection.cursor().execute(sql).fetch_arrow_all(force_return_table=True))
        return _as_read(frame)


def snowpipe_sql(table: RawTable) -> str:
    """The auto-ingest pipe of one raw table: what lands under the external stage's
    `{STAGE_PREFIX}/{table}/` is copied in by column name."""
    return (
        f"-- Generated from coin_platform/storage/warehouse_tables.py RAW_TABLES ({table.name}); "
        "coin_platform_tests/storage/test_warehouse.py keeps it equal.\n"
        f"CREATE PIPE IF NOT EXISTS {RAW_SCHEMA}.{table.name}_pipe\n"
        "  AUTO_INGEST = TRUE\n"
        f"  AS COPY INTO {RAW_SCHEMA}.{table.name}\n"
        f"  FROM @{EXTERNAL_STAGE}/{STAGE_PREFIX}/{table.name}/\n"
        "  FILE_FORMAT = (TYPE = PARQUET)\n"
        "  MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE;\n"
    )
