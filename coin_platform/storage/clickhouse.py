"""The ClickHouse hot store: recent OHLCV in ClickHouse, chDB on disk locally or a server in prod.

Both backends are reached through clickhouse-connect and only its shared client
surface (`command`, `insert_arrow`, `query_arrow`), so the same SQL runs on both.

chDB allows one process per on-disk path (a second one fails with "Cannot lock
file …/status"). `open_clickhouse` therefore opens the client for the duration
of one `with` block and serialises processes with a file lock held around
open → use → close: a second process waits for the first instead of failing.

`HotStore` is the typed face of the tables below: one database over an open
client, every table function as a method, so callers never pass `database=`.
`open_hot_store` hands one out and migrates each target (backend, location,
database, retention) once per process; the client is still opened and closed
per block.

Schema is managed here, idempotently: every statement is `CREATE … IF NOT
EXISTS`, applied versions are recorded in `schema_migrations`, and the TTL of
every hot table is brought to the configured retention on each `migrate`
(`ALTER TABLE … MODIFY TTL`, only when it differs).

Tables (database `coin` by default), all `DateTime64(3, 'UTC')`:

- `ohlcv_1m`, `ohlcv_15m`, `ohlcv_1h`: ReplacingMergeTree(version)
  ORDER BY (symbol, open_time) PARTITION BY toDate(open_time), TTL open_time +
  retention days.
- `ohlcv_15m_from_1m`, `ohlcv_1h_from_1m`: AggregatingMergeTree tables fed by
  materialized views on `ohlcv_1m` (argMin/argMax for open/close, max/min,
  sums, and a candle count so incomplete buckets can be told apart), keyed by
  (symbol, open_time, version): the version of the 1m rows they came from.
- `features_1m`, `features_15m`, `features_1h`: indicator features per candle.
- `candidates` (no TTL): see `coin_platform.storage.signals`. Decisions are in the trading store.

Rollup exactness under reruns: a materialized view sees every insert, so
re-inserting a 1m day would add its states to the rollup a second time (sums
doubled) even though `ohlcv_1m FINAL` deduplicates. `replace_ohlcv_day` therefore
replaces a (symbol, day) slice by version: it inserts the new rows under a
version above every stored one, and only after that insert succeeded deletes
(lightweight `DELETE`) the slice's older versions in the hot table and, for 1m,
in both rollup tables (15m and 1h buckets never straddle a UTC day). The
rollup then holds exactly one set of states per 1m row, and reading it with
the -Merge combinators is exact. A failed insert, even one a rollup view
refused after the 1m rows landed, is undone by deleting its version, so a
failed repair leaves the previous day in place rather than an empty one.
Between the insert and the delete a reader may briefly see both versions'
states in a rollup (its candle counts then exceed a full bucket, so nothing
compares them as complete). Whole-day `REPLACE PARTITION` is not usable
because a day partition holds every symbol.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.util
import os
import re
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import filelock
import polars as pl

from coin_platform.core.intervals import interval_ms
from coin_platform.core.time import UTC_MS
from coin_platform.events.schemas import Candidate
from coin_platform.features.schema import FEATURE_SCHEMA, INDICATOR_COLUMNS
from coin_platform.market.klines import OHLCV_COLUMNS, OHLCV_SCHEMA, aggregate_mismatch
from coin_platform.storage import signals
from coin_platform.storage.signals import candidates_table, decisions_table

HOT_INTERVALS = ("1m", "15m", "1h")
ROLLUP_INTERVALS = ("15m", "1h")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_TTL_DAYS = re.compile(r"TTL toDateTime\(open_time\) \+ toIntervalDay\((\d+)\)")
_INTERVAL_SQL = {"15m": "INTERVAL 15 MINUTE", "1h": "INTERVAL 1 HOUR"}
PRICE_COLUMNS = ("open", "high", "low", "close")
SUM_COLUMNS = ("volume", "quote_volume", "taker_buy_volume", "taker_buy_quote_volume")


class ClickHouseLockTimeout(TimeoutError):
    """Another process held the chDB path's lock for longer than the timeout."""


class ChDBMissing(ImportError):
    """chDB mode was asked for where chDB is not installed (the prod image has none)."""


@dataclass(frozen=True)
class ClickHouseConfig:
    """Where the hot store is: a chDB directory (local) or a ClickHouse server (prod)."""

    mode: Literal["chdb", "server"] = "chdb"
    path: str | None = None
    host: str = "localhost"
    port: int = 8123
    user: str = "default"
    password: str | None = field(default=None, repr=False)
    secure: bool = False
    database: str = "coin"
    lock_timeout_s: float = 600.0

    def __post_init__(self) -> None:
        if self.mode not in ("chdb", "server"):
            raise ValueError(f"clickhouse mode must be 'chdb' or 'server', not {self.mode!r}")
        if self.mode == "chdb" and not self.path:
            raise ValueError("clickhouse mode 'chdb' needs a path")
        if not _IDENTIFIER.match(self.database):
            raise ValueError(f"clickhouse database {self.database!r} is not a plain identifier")

    @property
    def lock_path(self) -> str:
        return f"{self.path}.lock"


def _holder_path(config: ClickHouseConfig) -> Path:
    return Path(f"{config.path}.lock.holder")


@contextlib.contextmanager
def open_clickhouse(config: ClickHouseConfig, *, chdb_options: dict[str, str] | None = None) -> Iterator[object]:
    """A clickhouse-connect client for the duration of the block, closed afterwards.

    chDB: holds `path + ".lock"` (waiting up to `lock_timeout_s`) from before the
    client opens until after it closes; `chdb_options` are the engine's startup
    options (e.g. a `config-file`). Server: a plain HTTP client, no lock.
    """
    import clickhouse_connect

    if config.mode == "server":
        client = clickhouse_connect.get_client(
            host=config.host,
            port=config.port,
            username=config.user,
            password=config.password or "",
            secure=config.secure,
        )
        try:
            yield client
        finally:
            client.close()
        return

    if importlib.util.find_spec("chdb") is None:
        # The prod image leaves chDB out (it is the `local` extra); say so instead of clickhouse-connect's
        # import error from deep inside its backend.
        raise ChDBMissing("chDB is not installed: install the local extra, pip install 'coin_platform[local]'")
    Path(config.path).parent.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(config.lock_path, timeout=config.lock_timeout_s)
    holder = _holder_path(config)
    try:
        lock.acquire()
    except filelock.Timeout:
        try:
            held_by = holder.read_text().strip() or "unknown"
        except OSError:
            held_by = "unknown"
        raise ClickHouseLockTimeout(
            f"chDB at {config.path} stayed locked for {config.lock_timeout_s:g} s "
            f"(lock file {config.lock_path}, held by {held_by})"
        ) from None
    try:
        holder.write_text(
            f"pid {os.getpid()} on {socket.gethostname()} since "
            f"{dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}\n"
        )
        client = clickhouse_connect.get_client(interface="chdb", path=config.path, chdb_options=chdb_options)
        try:
            yield client
        finally:
            client.close()
    finally:
        with contextlib.suppress(OSError):
            holder.write_text("")
        lock.release()


# ---------------------------------------------------------------- schema


def _hot_table(db: str, interval: str, retention_days: int) -> str:
    return f"""
CREATE TABLE IF NOT EXISTS {db}.ohlcv_{interval} (
    symbol LowCardinality(String),
    open_time DateTime64(3, 'UTC'),
    open Float64,
    high Float64,
    low Float64,
    close Float64,
    volume Float64,
    quote_volume Float64,
    trades Int64,
    taker_buy_volume Float64,
    taker_buy_quote_volume Float64,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toDate(open_time)
ORDER BY (symbol, open_time)
TTL toDateTime(open_time) + INTERVAL {retention_days} DAY
"""


def _rollup_table(db: str, interval: str, retention_days: int) -> str:
    ts = "DateTime64(3, 'UTC')"
    return f"""
CREATE TABLE IF NOT EXISTS {db}.ohlcv_{interval}_from_1m (
    symbol LowCardinality(String),
    open_time {ts},
    open AggregateFunction(argMin, Float64, {ts}),
    high AggregateFunction(max, Float64),
    low AggregateFunction(min, Float64),
    close AggregateFunction(argMax, Float64, {ts}),
    volume AggregateFunction(sum, Float64),
    quote_volume AggregateFunction(sum, Float64),
    trades AggregateFunction(sum, Int64),
    taker_buy_volume AggregateFunction(sum, Float64),
    taker_buy_quote_volume AggregateFunction(sum, Float64),
    candles AggregateFunction(count)
)
ENGINE = AggregatingMergeTree
PARTITION BY toDate(open_time)
ORDER BY (symbol, open_time)
TTL toDateTime(open_time) + INTERVAL {retention_days} DAY
"""


def _rollup_view(db: str, interval: str, *, versioned: bool = False) -> str:
    """The rollup's view; `versioned` (migration 5) keeps each 1m row's version in the rollup key."""
    # Source columns are qualified (m.open_time) so the bucket alias never shadows them.
    version = "\n    m.version AS version," if versioned else ""
    return f"""
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.ohlcv_{interval}_from_1m_mv
TO {db}.ohlcv_{interval}_from_1m AS
SELECT
    m.symbol AS symbol,
    toStartOfInterval(m.open_time, {_INTERVAL_SQL[interval]}) AS open_time,{version}
    argMinState(m.open, m.open_time) AS open,
    maxState(m.high) AS high,
    minState(m.low) AS low,
    argMaxState(m.close, m.open_time) AS close,
    sumState(m.volume) AS volume,
    sumState(m.quote_volume) AS quote_volume,
    sumState(m.trades) AS trades,
    sumState(m.taker_buy_volume) AS taker_buy_volume,
    sumState(m.taker_buy_quote_volume) AS taker_buy_quote_volume,
    countState() AS candles
FROM {db}.ohlcv_1m AS m
GROUP BY symbol, open_time{", version" if versioned else ""}
"""


# ClickHouse types of the polars types FEATURE_SCHEMA uses.
_CLICKHOUSE_TYPES: dict[pl.DataType, str] = {UTC_MS: "DateTime64(3, 'UTC')", pl.Float64(): "Float64"}
# The feature columns migration 3 created, frozen: an applied migration's SQL never changes.
# A column added to FEATURE_SCHEMA needs a new migration (`ALTER TABLE ... ADD COLUMN` with
# `feature_column_ddl(name)`); test_clickhouse checks the migrated tables equal FEATURE_SCHEMA.
FEATURE_COLUMNS_V3 = (
    "open_time close volume ema_20 ema_50 rsi_14 macd macd_signal macd_hist bb_upper bb_middle bb_lower atr_14 "
    "zone_low zone_high zone_volume_share"
).split()


def feature_column_ddl(name: str) -> str:
    """`name type` of one FEATURE_SCHEMA column in ClickHouse; indicators are Nullable (warm-up)."""
    sql_type = _CLICKHOUSE_TYPES[FEATURE_SCHEMA[name]]
    return f"{name} {f'Nullable({sql_type})' if name in INDICATOR_COLUMNS else sql_type}"


def _features_table(db: str, interval: str, retention_days: int) -> str:
    """Indicator features per candle (coin_platform.features.FEATURE_SCHEMA); warm-up rows are NULL."""
    columns = ",\n    ".join(feature_column_ddl(name) for name in FEATURE_COLUMNS_V3)
    return f"""
CREATE TABLE IF NOT EXISTS {db}.features_{interval} (
    symbol LowCardinality(String),
    {columns},
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toDate(open_time)
ORDER BY (symbol, open_time)
TTL toDateTime(open_time) + INTERVAL {retention_days} DAY
"""


# Ordered (version, description, statements(db, retention_days)); never edit an applied one.
MIGRATIONS: list[tuple[int, str, object]] = [
    (
        1,
        "hot OHLCV tables",
        lambda db, days: [_hot_table(db, i, days) for i in HOT_INTERVALS],
    ),
    (
        2,
        "1m rollups to 15m and 1h",
        lambda db, days: [
            s for i in ROLLUP_INTERVALS for s in (_rollup_table(db, i, days), _rollup_view(db, i))
        ],
    ),
    (
        3,
        "feature tables",
        lambda db, days: [_features_table(db, i, days) for i in HOT_INTERVALS],
    ),
    (
        4,
        "candidates and decisions",
        lambda db, days: [candidates_table(db), decisions_table(db)],
    ),
    (
        5,
        "rollups keyed by the 1m rows' version, so a replaced day's old states can be deleted after the new insert",
        lambda db, days: [
            statement
            for i in ROLLUP_INTERVALS
            for statement in (
                f"ALTER TABLE {db}.ohlcv_{i}_from_1m ADD COLUMN IF NOT EXISTS version UInt64 AFTER open_time, "
                "MODIFY ORDER BY (symbol, open_time, version)",
                f"DROP VIEW IF EXISTS {db}.ohlcv_{i}_from_1m_mv",
                _rollup_view(db, i, versioned=True),
            )
        ],
    ),
    (
        6,
        "decisions moved to the trading store, beside the orders they lead to",
        lambda db, days: [f"DROP TABLE IF EXISTS {db}.decisions"],
    ),
]

TTL_TABLES = (
    tuple(f"ohlcv_{i}" for i in HOT_INTERVALS)
    + tuple(f"ohlcv_{i}_from_1m" for i in ROLLUP_INTERVALS)
    + tuple(f"features_{i}" for i in HOT_INTERVALS)
)


def _check_retention(retention_days: int) -> None:
    if not 1 <= retention_days <= 3:
        raise ValueError(f"retention_days must be 1 to 3, not {retention_days}")


def migrate(client, retention_days: int, database: str = "coin") -> list[int]:
    """Create what is missing and set every hot table's TTL; returns the versions applied now.

    Safe to run before every use: a second run applies nothing.
    """
    _check_retention(retention_days)
    if not _IDENTIFIER.match(database):
        raise ValueError(f"{database!r} is not a plain identifier")
    client.command(f"CREATE DATABASE IF NOT EXISTS {database}")
    client.command(
        f"""
CREATE TABLE IF NOT EXISTS {database}.schema_migrations (
    version UInt32,
    description String,
    applied_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY version
"""
    )
    done = set(
        pl.from_arrow(
            client.query_arrow(f"SELECT version FROM {database}.schema_migrations FINAL")
        )["version"].to_list()
    )
    applied = []
    for version, description, statements in MIGRATIONS:
        if version in done:
            continue
        for statement in statements(database, retention_days):
            client.command(statement)
        record = pl.DataFrame(
            {
                "version": [version],
                "description": [description],
                "applied_at": [dt.datetime.now(dt.UTC)],
            },
            schema={
                "version": pl.UInt32,
                "description": pl.String,
                "applied_at": pl.Datetime("ms", "UTC"),
            },
        )
        client.insert_arrow("schema_migrations", record.to_arrow(), database=database)
        applied.append(version)
    apply_retention(client, retention_days, database)
    return applied


def ttl_days(client, table: str, database: str = "coin") -> int | None:
    """The retention in days of a hot table's TTL, as ClickHouse reports it."""
    engine = client.command(
        "SELECT engine_full FROM system.tables WHERE database = {db:String} AND name = {t:String}",
        parameters={"db": database, "t": table},
    )
    found = _TTL_DAYS.search(str(engine))
    return int(found.group(1)) if found else None


def apply_retention(client, retention_days: int, database: str = "coin") -> list[str]:
    """Bring every hot table's TTL to `retention_days`; returns the tables altered."""
    _check_retention(retention_days)
    altered = []
    for table in TTL_TABLES:
        if ttl_days(client, table, database) != retention_days:
            client.command(
                f"ALTER TABLE {database}.{table} "
                f"MODIFY TTL toDateTime(open_time) + INTERVAL {retention_days} DAY"
            )
            altered.append(table)
    return altered


# ---------------------------------------------------------------- data

# One symbol's rows with a ≤ open_time < b; parameters s, a, b (see _range_parameters).
SYMBOL_RANGE = (
    "symbol = {s:String} AND open_time >= toDateTime64({a:String}, 3, 'UTC') "
    "AND open_time < toDateTime64({b:String}, 3, 'UTC')"
)


def _range_parameters(symbol: str, start: dt.datetime, end: dt.datetime) -> dict[str, str]:
    return {"s": symbol, "a": _ts(start), "b": _ts(end)}


def _check_interval(interval: str) -> None:
    if interval not in HOT_INTERVALS:
        raise ValueError(f"no hot table for interval {interval!r}; hot: {list(HOT_INTERVALS)}")


def _day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    return start, start + dt.timedelta(days=1)


def _ts(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def insert_ohlcv(
    client,
    interval: str,
    symbol: str,
    frame: pl.DataFrame,
    *,
    version: int | None = None,
    database: str = "coin",
) -> int:
    """Insert OHLCV rows (OHLCV_SCHEMA) for one symbol; returns the rows inserted."""
    _check_interval(interval)
    if frame.is_empty():
        return 0
    version = version if version is not None else time.time_ns() // 1_000_000
    rows = frame.select(
        pl.lit(symbol).alias("symbol"),
        *[pl.col(c).cast(t) for c, t in OHLCV_SCHEMA.items()],
        pl.lit(version, dtype=pl.UInt64).alias("version"),
    )
    client.insert_arrow(f"ohlcv_{interval}", rows.to_arrow(), database=database)
    return rows.height


def _ohlcv_tables(interval: str, database: str) -> list[str]:
    """The tables holding a symbol's `interval` candles: the hot table and, for 1m, its rollups."""
    rollups = [f"{database}.ohlcv_{i}_from_1m" for i in ROLLUP_INTERVALS] if interval == "1m" else []
    return [f"{database}.ohlcv_{interval}", *rollups]


def _delete_range(
    client,
    table: str,
    symbol: str,
    start: dt.datetime,
    end: dt.datetime,
    *,
    version_op: Literal["<", "="] | None = None,
    version: int = 0,
) -> None:
    """Lightweight DELETE of a symbol's rows with start ≤ open_time < end (those `version_op version` only)."""
    where = SYMBOL_RANGE + (f" AND version {version_op} {{v:UInt64}}" if version_op else "")
    client.command(
        f"DELETE FROM {table} WHERE {where}", parameters={**_range_parameters(symbol, start, end), "v": version}
    )


def _next_version(
    client, tables: Sequence[str], symbol: str, start: dt.datetime, end: dt.datetime, requested: int | None
) -> int:
    """`requested` (default: now in ms), raised above every version stored for the slice,
    so the new rows win under FINAL and `version = v` names only them."""
    stored = max(
        client.command(
            f"SELECT max(version) FROM {table} WHERE {SYMBOL_RANGE}", parameters=_range_parameters(symbol, start, end)
        )
        for table in tables
    )
    wanted = requested if requested is not None else time.time_ns() // 1_000_000
    return max(wanted, int(stored) + 1)


def _insert_or_undo(
    client,
    tables: Sequence[str],
    symbol: str,
    start: dt.datetime,
    end: dt.datetime,
    version: int,
    insert: Callable[[], int],
) -> int:
    """Run `insert` (rows of `version`); if it fails, delete whatever part of it landed, then re-raise.

    An insert is not atomic across a table and its views: the 1m rows and one
    rollup can be written before another view refuses them.
    """
    try:
        return insert()
    except Exception as exc:
        try:
            for table in tables:
                _delete_range(client, table, symbol, start, end, version_op="=", version=version)
        except Exception as undo:
            exc.add_note(f"undoing the failed insert of version {version} failed too: {undo}")
        raise


def _rows_outside_day(frame: pl.DataFrame, day: dt.date) -> int:
    start, end = _day_bounds(day)
    return frame.filter((pl.col("open_time") < start) | (pl.col("open_time") >= end)).height


def replace_ohlcv_day(
    client,
    interval: str,
    symbol: str,
    day: dt.date,
    frame: pl.DataFrame,
    *,
    version: int | None = None,
    database: str = "coin",
) -> int:
    """Make the hot table (and for 1m its rollups) hold exactly `frame` for (symbol, day).

    The live edge re-sends a day whose stored candles are unchanged: then only
    the new candles are inserted, which the rollup views add exactly. When a
    stored candle changed or vanished, or a rollup counts other candles than are
    stored (a repair), the whole day is inserted under a version above every
    stored one and only then are the older versions deleted (a slow synchronous
    mutation). Either way a failed insert is undone (`_insert_or_undo`), so the
    day keeps its previous rows and rollups exactly; should the final delete
    fail, the rollup counts no longer match and the next run repairs the day.
    `version` is a lower bound. Returns the rows the day now holds.
    """
    if outside := _rows_outside_day(frame, day):
        raise ValueError(f"{outside} rows of {symbol} {interval} are not on {day}")
    _check_interval(interval)
    start, end = _day_bounds(day)
    tables = _ohlcv_tables(interval, database)
    version = _next_version(client, tables, symbol, start, end, version)
    stored = read_hot_ohlcv(client, interval, symbol, start, end, database=database)
    frame = frame.select(list(OHLCV_SCHEMA)).cast(OHLCV_SCHEMA)
    unchanged = stored.join(frame, on=list(OHLCV_SCHEMA), how="semi", nulls_equal=True)
    repair = unchanged.height != stored.height or _rollups_count(client, interval, symbol, day, database) not in (
        None,
        stored.height,
    )
    rows = frame if repair else frame.join(stored, on="open_time", how="anti")
    _insert_or_undo(
        client,
        tables,
        symbol,
        start,
        end,
        version,
        lambda: insert_ohlcv(client, interval, symbol, rows, version=version, database=database),
    )
    if repair:
        for table in tables:
            _delete_range(client, table, symbol, start, end, version_op="<", version=version)
    return frame.height


def _rollups_count(client, interval: str, symbol: str, day: dt.date, database: str) -> int | None:
    """The 1m candles the rollups have seen for (symbol, day) — one number when every rollup
    agrees, -1 when they disagree; None for intervals without rollups."""
    if interval != "1m":
        return None
    start, end = _day_bounds(day)
    counts = {
        client.command(
            f"SELECT countMerge(candles) FROM {database}.ohlcv_{rollup}_from_1m WHERE {SYMBOL_RANGE}",
            parameters=_range_parameters(symbol, start, end),
        )
        for rollup in ROLLUP_INTERVALS
    }
    return counts.pop() if len(counts) == 1 else -1


def replace_features_day(
    client,
    interval: str,
    symbol: str,
    day: dt.date,
    features: pl.DataFrame,
    *,
    version: int | None = None,
    database: str = "coin",
) -> int:
    """Make features_{interval} hold exactly `features` (FEATURE_SCHEMA rows) for (symbol, day).

    The new rows go in first, under a version above every stored one, so they
    replace the old rows under FINAL (ReplacingMergeTree); a failed insert is
    undone and the day keeps its previous features. Only when the day holds
    candles the new rows no longer have does the slow synchronous DELETE of
    the older versions run, after the insert.
    """
    _check_interval(interval)
    if outside := _rows_outside_day(features, day):
        raise ValueError(f"{outside} feature rows of {symbol} {interval} are not on {day}")
    table = f"{database}.features_{interval}"
    start, end = _day_bounds(day)
    stale = client.command(
        f"SELECT count() FROM {table} WHERE {SYMBOL_RANGE} "
        "AND toUnixTimestamp64Milli(open_time) NOT IN {keep:Array(Int64)}",
        parameters={**_range_parameters(symbol, start, end), "keep": features["open_time"].dt.epoch("ms").to_list()},
    )
    version = _next_version(client, [table], symbol, start, end, version)
    rows = features.select(
        pl.lit(symbol).alias("symbol"), pl.all(), pl.lit(version, dtype=pl.UInt64).alias("version")
    )

    def insert() -> int:
        if not rows.is_empty():
            client.insert_arrow(f"features_{interval}", rows.to_arrow(), database=database)
        return rows.height

    _insert_or_undo(client, [table], symbol, start, end, version, insert)
    if stale:
        _delete_range(client, table, symbol, start, end, version_op="<", version=version)
    return rows.height


def latest_features(client, interval: str, symbols: Sequence[str], *, database: str = "coin") -> pl.DataFrame:
    """The newest stored (closed) candle's features for every symbol, in one query.

    Symbols without features are absent from the result.
    """
    _check_interval(interval)
    return pl.from_arrow(
        client.query_arrow(
            f"SELECT * EXCEPT version FROM {database}.features_{interval} FINAL "
            f"WHERE symbol IN {{s:Array(String)}} ORDER BY symbol, open_time DESC LIMIT 1 BY symbol",
            parameters={"s": list(symbols)},
        )
    )  # type: ignore[return-value]


def hot_counts(
    client, interval: str, symbols: Sequence[str], days: Sequence[dt.date], *, database: str = "coin"
) -> dict[tuple[str, dt.date], int]:
    """Deduplicated (FINAL) row counts per (symbol, day) for the given symbols and days."""
    _check_interval(interval)
    if not symbols or not days:
        return {}
    frame = pl.from_arrow(
        client.query_arrow(
            f"SELECT symbol, toDate(open_time) AS day, count() AS n "
            f"FROM {database}.ohlcv_{interval} FINAL "
            f"WHERE symbol IN {{s:Array(String)}} AND toDate(open_time) IN {{d:Array(Date)}} "
            f"GROUP BY symbol, day",
            parameters={"s": list(symbols), "d": [d.isoformat() for d in days]},
        )
    )
    counts = {(s, d): 0 for s in symbols for d in days}
    for symbol, day, n in frame.iter_rows():
        counts[(symbol, day)] = n
    return counts


def latest_closed(
    client, interval: str, symbols: Sequence[str], *, database: str = "coin"
) -> dict[str, dt.datetime | None]:
    """The newest stored (closed) candle's open_time per symbol; None when it has none."""
    _check_interval(interval)
    frame = pl.from_arrow(
        client.query_arrow(
            f"SELECT symbol, max(open_time) AS last FROM {database}.ohlcv_{interval} "
            f"WHERE symbol IN {{s:Array(String)}} GROUP BY symbol",
            parameters={"s": list(symbols)},
        )
    )
    latest: dict[str, dt.datetime | None] = {s: None for s in symbols}
    latest.update(dict(frame.iter_rows()))
    return latest


def read_hot_ohlcv(
    client,
    interval: str,
    symbol: str,
    start: dt.datetime,
    end: dt.datetime,
    *,
    database: str = "coin",
) -> pl.DataFrame:
    """A symbol's deduplicated hot candles with start ≤ open_time < end, in OHLCV_SCHEMA."""
    _check_interval(interval)
    frame = pl.from_arrow(
        client.query_arrow(
            f"SELECT {', '.join(OHLCV_COLUMNS)} FROM {database}.ohlcv_{interval} FINAL "
            f"WHERE {SYMBOL_RANGE} ORDER BY open_time",
            parameters=_range_parameters(symbol, start, end),
        )
    )
    return frame.cast(OHLCV_SCHEMA) if frame.height else pl.DataFrame(schema=OHLCV_SCHEMA)


def read_rollup(
    client,
    interval: str,
    symbol: str,
    start: dt.datetime,
    end: dt.datetime,
    *,
    database: str = "coin",
) -> pl.DataFrame:
    """The 1m → `interval` rollup (OHLCV_SCHEMA plus `candles`, the 1m rows per bucket)."""
    if interval not in ROLLUP_INTERVALS:
        raise ValueError(f"no 1m rollup for {interval!r}; rollups: {list(ROLLUP_INTERVALS)}")
    frame = pl.from_arrow(
        client.query_arrow(
            f"""
SELECT open_time,
    argMinMerge(open) AS open, maxMerge(high) AS high, minMerge(low) AS low,
    argMaxMerge(close) AS close, sumMerge(volume) AS volume,
    sumMerge(quote_volume) AS quote_volume, sumMerge(trades) AS trades,
    sumMerge(taker_buy_volume) AS taker_buy_volume,
    sumMerge(taker_buy_quote_volume) AS taker_buy_quote_volume,
    countMerge(candles) AS candles
FROM {database}.ohlcv_{interval}_from_1m
WHERE {SYMBOL_RANGE}
GROUP BY open_time ORDER BY open_time
""",
            parameters=_range_parameters(symbol, start, end),
        )
    )
    schema = {**OHLCV_SCHEMA, "candles": pl.Int64()}
    return frame.cast(schema) if frame.height else pl.DataFrame(schema=schema)


@dataclass(frozen=True)
class RollupComparison:
    compared: int
    differing: list[str]

    @property
    def passed(self) -> bool:
        return not self.differing


@dataclass(frozen=True)
class SourceComparison:
    """Hot candles against the object-store candles of the same range."""

    compared: int
    only_in_hot: int
    only_in_source: int
    differing: list[str]

    @property
    def passed(self) -> bool:
        return not (self.only_in_hot or self.only_in_source or self.differing)

    def summary(self) -> dict[str, object]:
        return {
            "only_in_hot": self.only_in_hot,
            "only_in_source": self.only_in_source,
            "differing_open_times": self.differing,
        }


def compare_with_source(hot: pl.DataFrame, source: pl.DataFrame) -> SourceComparison:
    """Every column of every candle exactly: the hot store holds what was cleaned, no more, no less."""
    joined = hot.join(source, on="open_time", how="full", suffix="_source", coalesce=False)
    only_hot = joined.filter(pl.col("open_time_source").is_null()).height
    only_source = joined.filter(pl.col("open_time").is_null()).height
    both = joined.filter(pl.col("open_time").is_not_null() & pl.col("open_time_source").is_not_null())
    values = [c for c in OHLCV_COLUMNS if c != "open_time"]
    bad = both.filter(pl.any_horizontal([pl.col(c).ne_missing(pl.col(f"{c}_source")) for c in values]))
    return SourceComparison(
        compared=both.height,
        only_in_hot=only_hot,
        only_in_source=only_source,
        differing=[t.isoformat() for t in bad["open_time"].head(20).to_list()],
    )


def compare_rollup(coarse: pl.DataFrame, rollup: pl.DataFrame, interval: str) -> RollupComparison:
    """Coarse candles against the 1m rollup, over buckets that have all their 1m candles.

    Prices and trades exactly; summed volumes to 1e-9 relative (float sums in another order).
    """
    complete = rollup.filter(pl.col("candles") == interval_ms(interval) // interval_ms("1m"))
    joined = coarse.join(complete, on="open_time", suffix="_agg", how="inner")
    mismatch = aggregate_mismatch(exact=(*PRICE_COLUMNS, "trades"), summed=SUM_COLUMNS, suffix="_agg")
    bad = joined.filter(mismatch)
    return RollupComparison(
        compared=joined.height,
        differing=[t.isoformat() for t in bad["open_time"].head(20).to_list()],
    )


# ---------------------------------------------------------------- the typed store


class HotStore:
    """The hot store's tables in one database over an open client: the functions above as methods.

    Callers hold a HotStore instead of a (client, database) pair, so no call names the
    database. `open_hot_store` hands one out, migrated; `HotStore(client, database)` wraps
    a client opened elsewhere (migrate it with `migrate`).
    """

    def __init__(self, client, database: str = "coin") -> None:
        if not _IDENTIFIER.match(database):
            raise ValueError(f"{database!r} is not a plain identifier")
        self.client = client
        self.database = database
        # The versions this store's opening applied ([] when the process had migrated its target before).
        self.migrations_applied: list[int] = []

    def __repr__(self) -> str:
        return f"HotStore(database={self.database!r})"

    # schema

    def migrate(self, retention_days: int) -> list[int]:
        return migrate(self.client, retention_days, self.database)

    def ttl_days(self, table: str) -> int | None:
        return ttl_days(self.client, table, self.database)

    def apply_retention(self, retention_days: int) -> list[str]:
        return apply_retention(self.client, retention_days, self.database)

    # candles

    def insert_ohlcv(self, interval: str, symbol: str, frame: pl.DataFrame, *, version: int | None = None) -> int:
        return insert_ohlcv(self.client, interval, symbol, frame, version=version, database=self.database)

    def replace_ohlcv_day(
        self, interval: str, symbol: str, day: dt.date, frame: pl.DataFrame, *, version: int | None = None
    ) -> int:
        return replace_ohlcv_day(self.client, interval, symbol, day, frame, version=version, database=self.database)

    def hot_counts(
        self, interval: str, symbols: Sequence[str], days: Sequence[dt.date]
    ) -> dict[tuple[str, dt.date], int]:
        return hot_counts(self.client, interval, symbols, days, database=self.database)

    def latest_closed(self, interval: str, symbols: Sequence[str]) -> dict[str, dt.datetime | None]:
        return latest_closed(self.client, interval, symbols, database=self.database)

    def read_hot_ohlcv(self, interval: str, symbol: str, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
        return read_hot_ohlcv(self.client, interval, symbol, start, end, database=self.database)

    def read_rollup(self, interval: str, symbol: str, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
        return read_rollup(self.client, interval, symbol, start, end, database=self.database)

    # features

    def replace_features_day(
        self, interval: str, symbol: str, day: dt.date, features: pl.DataFrame, *, version: int | None = None
    ) -> int:
        return replace_features_day(
            self.client, interval, symbol, day, features, version=version, database=self.database
        )

    def latest_features(self, interval: str, symbols: Sequence[str]) -> pl.DataFrame:
        return latest_features(self.client, interval, symbols, database=self.database)


    # candidates (coin_platform.storage.signals)

    def write_candidates(
        self, candidates: Sequence[Candidate], published: dict[str, dt.datetime | None]
    ) -> int:
        return signals.write_candidates(self.client, candidates, published, database=self.database)

    def published_candidates(self, ids: Sequence[str]) -> dict[str, dt.datetime]:
        return signals.published_candidates(self.client, ids, database=self.database)

    def read_candidates(self, symbol: str, interval: str, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
        return signals.read_candidates(self.client, symbol, interval, start, end, database=self.database)


# The targets (backend, location, database, retention) this process has migrated: a process
# migrates each once, on its first open; later opens only open.
_MIGRATED: set[tuple[str, str, str, int]] = set()


def _migration_target(config: ClickHouseConfig, retention_days: int) -> tuple[str, str, str, int]:
    where = str(Path(config.path).resolve()) if config.mode == "chdb" else f"{config.host}:{config.port}"
    return (config.mode, where, config.database, retention_days)


@contextlib.contextmanager
def open_hot_store(config: ClickHouseConfig, retention_days: int) -> Iterator[HotStore]:
    """A HotStore for the block (chDB: under the path's file lock, see `open_clickhouse`), closed afterwards.

    The first open of a target in a process runs `migrate` (its versions in
    `migrations_applied`); later ones skip it. The client itself is opened and
    closed per block, as chDB requires.
    """
    _check_retention(retention_days)
    target = _migration_target(config, retention_days)
    with open_clickhouse(config) as client:
        store = HotStore(client, config.database)
        if target not in _MIGRATED:
            store.migrations_applied = migrate(client, retention_days, config.database)
            _MIGRATED.add(target)
        yield store
