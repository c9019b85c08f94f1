"""The trading record: decisions, orders, fills, positions, refused decisions and the paper broker's book, in one
DuckDB file.

A decision is recorded here, by the run that trades it, before it is published or acted on: the
record is what makes a rerun of the same candidate reuse it (and publish it at most once), and it
sits in the same file as the order it led to.

`TradingStore.in_memory()` is the same store, the same SQL and the same transactions, on an
in-memory SQLite database: the ledger of a decision-path backtest, where DuckDB's per-statement
cost (about 0.4 ms) would dominate a year of decisions and a file or a lock has no use.

DuckDB lets one process at a time write a file, and Dagster runs are separate processes, so the
file is opened per use inside a `filelock.FileLock` held around open → use → close; a second
process waits for the first instead of failing. Each use is one DuckDB transaction: an execution's
order, fills and position change commit together or not at all.

Nesting is joined, not stacked: a `transaction()` on the same file inside an open one (same thread)
returns the open one, so a helper that opens its own transaction also works inside a caller's.
No transaction should span a network call: execution records an order as PENDING in one, sends it
with no lock held, and records the outcome in another.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import duckdb
import filelock
import polars as pl

from coin_platform.events.schemas import Decision
from coin_platform.trading.orders import Fill, OrderRequest, OrderResult
from coin_platform.trading.positions import Position, apply_fill

_SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS decisions (
        decision_id VARCHAR PRIMARY KEY,
        candidate_id VARCHAR NOT NULL,
        strategy VARCHAR NOT NULL,
        symbol VARCHAR NOT NULL,
        interval VARCHAR NOT NULL,
        signal VARCHAR NOT NULL,
        action VARCHAR NOT NULL,
        confidence DOUBLE NOT NULL,
        model_version VARCHAR NOT NULL,
        price DOUBLE NOT NULL,
        candle_close_time TIMESTAMPTZ NOT NULL,
        inputs VARCHAR NOT NULL,  -- JSON object: what the scorer was given
        decided_at TIMESTAMPTZ NOT NULL,
        published_at TIMESTAMPTZ  -- null until it is on the decisions topic (holds are never published)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS orders (
        client_order_id VARCHAR PRIMARY KEY,  -- the decision id
        decision_id VARCHAR NOT NULL,
        strategy VARCHAR NOT NULL,
        signal VARCHAR NOT NULL,
        symbol VARCHAR NOT NULL,
        side VARCHAR NOT NULL,
        quantity DOUBLE NOT NULL,
        reduce_only BOOLEAN NOT NULL,
        reference_price DOUBLE NOT NULL,
        status VARCHAR NOT NULL,
        broker VARCHAR NOT NULL,
        exchange_order_id VARCHAR,
        filled_quantity DOUBLE NOT NULL,
        average_price DOUBLE,
        fees DOUBLE NOT NULL,
        reason VARCHAR,
        created_at TIMESTAMPTZ NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS fills (
        client_order_id VARCHAR NOT NULL,
        seq INTEGER NOT NULL,
        symbol VARCHAR NOT NULL,
        side VARCHAR NOT NULL,
        price DOUBLE NOT NULL,
        quantity DOUBLE NOT NULL,
        fee DOUBLE NOT NULL,
        realized_pnl DOUBLE NOT NULL,  -- net of this fill's fee
        filled_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (client_order_id, seq)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS positions (
        symbol VARCHAR PRIMARY KEY,
        quantity DOUBLE NOT NULL,  -- signed: + long, - short
        entry_price DOUBLE NOT NULL,
        realized_pnl DOUBLE NOT NULL,  -- net of fees
        fees_paid DOUBLE NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS rejections (
        decision_id VARCHAR PRIMARY KEY,
        strategy VARCHAR NOT NULL,
        signal VARCHAR NOT NULL,
        symbol VARCHAR NOT NULL,
        rule VARCHAR NOT NULL,
        reason VARCHAR NOT NULL,
        created_at TIMESTAMPTZ NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS paper_orders (
        client_order_id VARCHAR PRIMARY KEY,
        exchange_order_id VARCHAR NOT NULL,
        symbol VARCHAR NOT NULL,
        side VARCHAR NOT NULL,
        quantity DOUBLE NOT NULL,
        price DOUBLE NOT NULL,
        fee DOUBLE NOT NULL,
        filled_at TIMESTAMPTZ NOT NULL
    )
    """,
)

_POSITION_FIELDS = ("symbol", "quantity", "entry_price", "realized_pnl", "fees_paid")
# The status of an order recorded before it is sent, until its outcome is known.
PENDING = "PENDING"
_thread = threading.local()


class TradingStoreLocked(TimeoutError):
    """Another process held the trading store's lock for longer than the timeout."""


@dataclass(frozen=True)
class PendingOrder:
    order: OrderRequest
    broker: str
    created_at: dt.datetime


@dataclass(frozen=True)
class TradingSummary:
    realized_pnl: float  # USDT, net of fees
    unrealized_pnl: float  # USDT, open positions at the given marks
    fees_paid: float
    open_positions: int
    trades: int  # fills
    unmarked_symbols: tuple[str, ...] = ()  # open positions without a mark, left out of unrealized_pnl


class TradingStore:
    """Where orders, fills and positions live between runs; a new object on the same file resumes them."""

    def __init__(self, path: str | Path, *, lock_timeout_s: float = 120.0) -> None:
        self.path = Path(path).resolve()
        self.lock_path = Path(f"{self.path}.lock")
        self.lock_timeout_s = lock_timeout_s
        self._held: sqlite3.Connection | None = None

    @classmethod
    def in_memory(cls) -> TradingStore:
        """A store that lives in this process only, with one connection held open: the ledger of a
        decision-path backtest. Same tables and transactions as the file store; no file, no lock."""
        store = cls.__new__(cls)
        store.path = Path(f":memory:{id(store)}")
        store.lock_path = store.path
        store.lock_timeout_s = 0.0
        store._held = _sqlite_memory()
        return store

    @contextlib.contextmanager
    def transaction(self) -> Iterator[StoreTransaction]:
        """Lock, open, begin; commit on success, roll back on any exception; close, unlock."""
        open_here: dict[Path, StoreTransaction] = _thread.__dict__.setdefault("transactions", {})
        if self.path in open_here:
            yield open_here[self.path]
            return
        with self._connection() as connection:
            connection.execute("BEGIN")
            transaction = StoreTransaction(connection)
            open_here[self.path] = transaction
            try:
                yield transaction
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            finally:
                del open_here[self.path]
            connection.execute("COMMIT")

    @contextlib.contextmanager
    def _connection(self) -> Iterator[duckdb.DuckDBPyConnection | sqlite3.Connection]:
        if self._held is not None:
            yield self._held
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = filelock.FileLock(self.lock_path, timeout=self.lock_timeout_s)
        try:
            lock.acquire()
        except filelock.Timeout:
            raise TradingStoreLocked(
                f"trading store {self.path} stayed locked for {self.lock_timeout_s:g} s "
                f"(lock file {self.lock_path}); another run is using it"
            ) from None
        try:
            connection = duckdb.connect(str(self.path))
            try:
                yield _with_schema(connection)
            finally:
                connection.close()
        finally:
            lock.release()

    def orders(self) -> pl.DataFrame:
        with self.transaction() as tx:
            return tx.orders()

    def fills(self) -> pl.DataFrame:
        with self.transaction() as tx:
            return tx.fills()

    def positions(self) -> pl.DataFrame:
        with self.transaction() as tx:
            return tx.positions()

    def rejections(self) -> pl.DataFrame:
        with self.transaction() as tx:
            return tx.rejections()

    def position(self, symbol: str) -> Position:
        with self.transaction() as tx:
            return tx.position(symbol)

    def summary(self, marks: Mapping[str, float]) -> TradingSummary:
        with self.transaction() as tx:
            return tx.summary(marks)


def _with_schema(connection: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    connection.execute("SET TimeZone = 'UTC'")
    for statement in _SCHEMA:
        connection.execute(statement)
    return connection


# Every table's columns and SQL types, read from _SCHEMA: how SQLite rows become the frames DuckDB returns.
_COLUMN = re.compile(r"^\s*(\w+) (VARCHAR|DOUBLE|BOOLEAN|INTEGER|TIMESTAMPTZ)\b", re.MULTILINE)
_TABLE_COLUMNS = {
    re.search(r"CREATE TABLE IF NOT EXISTS (\w+)", statement).group(1): _COLUMN.findall(statement)  # type: ignore[union-attr]
    for statement in _SCHEMA
}
_POLARS_TYPES = {
    "VARCHAR": pl.String,
    "DOUBLE": pl.Float64,
    "BOOLEAN": pl.Boolean,
    "INTEGER": pl.Int32,
    "TIMESTAMPTZ": pl.Datetime("us", "UTC"),
}


# A backtest's ledger grows to years of orders, and every execution asks for the pending orders, the day's
# realized PnL and the symbol's last order: without these, each is a scan of the whole table. (The live file
# holds days of orders; DuckDB would turn an update of an indexed status into a delete and insert.)
_BACKTEST_INDEXES = (
    "CREATE INDEX IF NOT EXISTS fills_by_time ON fills (filled_at)",
    "CREATE INDEX IF NOT EXISTS orders_by_status ON orders (status)",
    "CREATE INDEX IF NOT EXISTS orders_by_symbol ON orders (symbol, created_at)",
)


def _utc_text(moment: dt.datetime) -> str:
    """A UTC instant as fixed-width ISO text, so SQLite compares and sorts it as time."""
    if moment.tzinfo is None:
        raise ValueError(f"the trading store keeps UTC instants; {moment.isoformat()} has no timezone")
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


def _sqlite_memory() -> sqlite3.Connection:
    """An in-memory SQLite database with the store's tables; its UTC timestamps and booleans read back typed
    (the converters apply only to connections that ask for declared types, as this one does)."""
    sqlite3.register_converter("TIMESTAMPTZ", lambda raw: dt.datetime.fromisoformat(raw.decode()))
    sqlite3.register_converter("BOOLEAN", lambda raw: raw != b"0")
    connection = sqlite3.connect(":memory:", detect_types=sqlite3.PARSE_DECLTYPES, isolation_level=None)
    for statement in (*_SCHEMA, *_BACKTEST_INDEXES):
        connection.execute(statement)
    return connection


class StoreTransaction:
    """Reads and writes inside one open transaction; get one from `TradingStore.transaction()`."""

    def __init__(self, connection: duckdb.DuckDBPyConnection | sqlite3.Connection) -> None:
        self._connection = connection

    def _execute(self, sql: str, params: list | None = None):
        params = params or []
        if isinstance(self._connection, sqlite3.Connection):  # SQLite keeps instants as UTC text
            params = [_utc_text(p) if isinstance(p, dt.datetime) else p for p in params]
        return self._connection.execute(sql, params)

    def _one(self, sql: str, params: list | None = None) -> tuple | None:
        # fetchall, not fetchone: DuckDB 2 refuses the next statement while a result is unread.
        rows = self._execute(sql, params).fetchall()
        return rows[0] if rows else None

    def _table(self, table: str, order_by: str) -> pl.DataFrame:
        sql = f"SELECT * FROM {table} ORDER BY {order_by}"
        if isinstance(self._connection, duckdb.DuckDBPyConnection):
            return self._connection.sql(sql).pl()
        schema = {name: _POLARS_TYPES[kind] for name, kind in _TABLE_COLUMNS[table]}
        return pl.DataFrame(self._connection.execute(sql).fetchall(), schema=schema, orient="row")

    # ------------------------------------------------------------ reads

    def decisions(self) -> pl.DataFrame:
        return self._table("decisions", "candle_close_time, decision_id")

    def decision(self, decision_id: str) -> tuple[Decision, dt.datetime | None] | None:
        """A recorded decision and when it was published (None: not yet), or None when there is none."""
        row = self._one(
            "SELECT candidate_id, strategy, symbol, interval, signal, action, confidence, model_version, price, "
            "candle_close_time, inputs, decided_at, published_at FROM decisions WHERE decision_id = ?",
            [decision_id],
        )
        if row is None:
            return None
        *fields, inputs, decided_at, published_at = row
        return Decision(*fields, inputs=json.loads(inputs), decided_at=decided_at), published_at

    def orders(self) -> pl.DataFrame:
        return self._table("orders", "created_at, client_order_id")

    def fills(self) -> pl.DataFrame:
        return self._table("fills", "filled_at, client_order_id, seq")

    def positions(self) -> pl.DataFrame:
        return self._table("positions", "symbol")

    def rejections(self) -> pl.DataFrame:
        return self._table("rejections", "created_at, decision_id")

    def previous_outcome(self, decision_id: str) -> str | None:
        """How an already handled decision ended (its order's status or the rule that refused it); None if new."""
        order = self._one("SELECT status, broker, created_at FROM orders WHERE client_order_id = ?", [decision_id])
        if order:
            return f"{order[1]} order {order[0]}, created {order[2].isoformat()}"
        refusal = self._one("SELECT rule, created_at FROM rejections WHERE decision_id = ?", [decision_id])
        if refusal:
            return f"refused by {refusal[0]} on {refusal[1].isoformat()}"
        return None

    def order_status(self, client_order_id: str) -> str | None:
        row = self._one("SELECT status FROM orders WHERE client_order_id = ?", [client_order_id])
        return row[0] if row else None

    def position(self, symbol: str) -> Position:
        row = self._one(
            "SELECT quantity, entry_price, realized_pnl, fees_paid FROM positions WHERE symbol = ?", [symbol]
        )
        return Position(symbol, *row) if row else Position(symbol)

    def realized_pnl_between(self, start: dt.datetime, end: dt.datetime) -> float:
        """Realized PnL (net of fees) of fills in [start, end), every symbol."""
        row = self._one(
            "SELECT coalesce(sum(realized_pnl), 0) FROM fills WHERE filled_at >= ? AND filled_at < ?", [start, end]
        )
        return float(row[0])

    def pending_orders(self) -> list[PendingOrder]:
        """Orders recorded before sending whose outcome is not known yet, oldest first."""
        rows = self._execute(
            "SELECT client_order_id, symbol, side, quantity, reduce_only, reference_price, broker, created_at "
            "FROM orders WHERE status = ? ORDER BY created_at, client_order_id",
            [PENDING],
        ).fetchall()
        return [PendingOrder(OrderRequest(*row[:6]), broker=row[6], created_at=row[7]) for row in rows]

    def pending_quantity(self, symbol: str) -> float:
        """The symbol's signed quantity in pending orders (+ buys, - sells): exposure that may already exist."""
        row = self._one(
            "SELECT coalesce(sum(CASE WHEN side = 'buy' THEN quantity ELSE -quantity END), 0) FROM orders "
            "WHERE symbol = ? AND status = ?",
            [symbol, PENDING],
        )
        return float(row[0])

    def last_order_at(self, symbol: str) -> dt.datetime | None:
        """When the symbol's latest order that a broker accepted, or may have accepted (pending), was created."""
        row = self._one(
            "SELECT created_at FROM orders WHERE symbol = ? AND status <> 'REJECTED' ORDER BY created_at DESC LIMIT 1",
            [symbol],
        )
        return row[0] if row else None

    def summary(self, marks: Mapping[str, float]) -> TradingSummary:
        realized = unrealized = fees = 0.0
        open_positions = 0
        unmarked = []
        for row in self.positions().iter_rows(named=True):
            position = Position(**{name: row[name] for name in _POSITION_FIELDS})
            realized += position.realized_pnl
            fees += position.fees_paid
            if position.quantity == 0:
                continue
            open_positions += 1
            if position.symbol in marks:
                unrealized += position.unrealized_pnl(marks[position.symbol])
            else:
                unmarked.append(position.symbol)
        (trades,) = self._one("SELECT count(*) FROM fills")
        return TradingSummary(realized, unrealized, fees, open_positions, trades, tuple(unmarked))

    # ------------------------------------------------------------ writes

    def record_decision(self, decision: Decision) -> None:
        """The decision, unpublished; a decision already recorded is kept as it was (the first one stands)."""
        self._execute(
            "INSERT INTO decisions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL) ON CONFLICT DO NOTHING",
            [
                decision.id,
                decision.candidate_id,
                decision.strategy,
                decision.symbol,
                decision.interval,
                decision.signal,
                decision.action,
                decision.confidence,
                decision.model_version,
                decision.price,
                decision.candle_close_time,
                json.dumps(decision.inputs, sort_keys=True),
                decision.decided_at,
            ],
        )

    def record_published(self, decision_id: str, published_at: dt.datetime) -> None:
        self._execute("UPDATE decisions SET published_at = ? WHERE decision_id = ?", [published_at, decision_id])

    def record_rejection(self, decision: Decision, *, rule: str, reason: str, created_at: dt.datetime) -> None:
        self._execute(
            "INSERT INTO rejections VALUES (?, ?, ?, ?, ?, ?, ?)",
            [decision.id, decision.strategy, decision.signal, decision.symbol, rule, reason, created_at],
        )

    def record_pending(self, decision: Decision, order: OrderRequest, *, broker: str, created_at: dt.datetime) -> None:
        """The order row, written before the order is sent: from here it counts toward exposure and cooldown."""
        self._execute(
            "INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, 0, NULL, 0, NULL, ?)",
            [
                order.client_order_id,
                decision.id,
                decision.strategy,
                decision.signal,
                order.symbol,
                order.side,
                order.quantity,
                order.reduce_only,
                order.reference_price,
                PENDING,
                broker,
                created_at,
            ],
        )

    def record_outcome(self, order: OrderRequest, result: OrderResult | None, *, reason: str | None = None) -> bool:
        """Settle a pending order: the broker's result, or (None) REJECTED with `reason`; and its fills.

        False, and nothing written, when the order is no longer pending: another run settled it first.
        """
        settled = self._one(
            "UPDATE orders SET status = ?, exchange_order_id = ?, filled_quantity = ?, average_price = ?, fees = ?, "
            "reason = ? WHERE client_order_id = ? AND status = ? RETURNING client_order_id",
            [
                result.status if result else "REJECTED",
                result.exchange_order_id if result else None,
                result.filled_quantity if result else 0.0,
                result.average_price if result else None,
                result.fees if result else 0.0,
                reason,
                order.client_order_id,
                PENDING,
            ],
        )
        if settled is None:
            return False
        for seq, fill in enumerate(result.fills if result else ()):
            self.record_fill(order, seq, fill)
        return True

    def record_fill(self, order: OrderRequest, seq: int, fill: Fill) -> Position:
        """Record one fill of `order` and move the symbol's position by it."""
        effect = apply_fill(self.position(order.symbol), order.side, fill.quantity, fill.price, fill.fee)
        self._execute(
            "INSERT INTO fills VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                order.client_order_id,
                seq,
                order.symbol,
                order.side,
                fill.price,
                fill.quantity,
                fill.fee,
                effect.realized_pnl,
                fill.time,
            ],
        )
        position = effect.position
        self._execute(
            "INSERT OR REPLACE INTO positions VALUES (?, ?, ?, ?, ?, ?)",
            [
                position.symbol,
                position.quantity,
                position.entry_price,
                position.realized_pnl,
                position.fees_paid,
                fill.time,
            ],
        )
        return position

    # ------------------------------------------------------------ the paper broker's book

    def paper_order(self, client_order_id: str) -> OrderResult | None:
        row = self._one(
            "SELECT exchange_order_id, price, quantity, fee, filled_at FROM paper_orders WHERE client_order_id = ?",
            [client_order_id],
        )
        if row is None:
            return None
        exchange_order_id, price, quantity, fee, filled_at = row
        return OrderResult(
            client_order_id=client_order_id,
            exchange_order_id=exchange_order_id,
            broker="paper",
            status="FILLED",
            fills=(Fill(price, quantity, fee, filled_at),),
            existing=True,
        )

    def record_paper_order(self, order: OrderRequest, exchange_order_id: str, fill: Fill) -> None:
        self._execute(
            "INSERT INTO paper_orders VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                order.client_order_id,
                exchange_order_id,
                order.symbol,
                order.side,
                fill.quantity,
                fill.price,
                fill.fee,
                fill.time,
            ],
        )
