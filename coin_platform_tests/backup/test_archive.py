"""Backups into real SeaweedFS of real stores (DuckDB files, chDB, a sqlite Dagster instance), and their restore."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import filelock
import polars as pl
import pytest

from coin_platform.backup.archive import (
    BackupCorrupted,
    BackupError,
    RestoreRefused,
    create_backup,
    list_backups,
    read_manifest,
    restore_backup,
)
from coin_platform.backup.parts import ChDBPart, DagsterSqlitePart, DuckDBFilePart, Part
from coin_platform.events.schemas import Candidate
from coin_platform.market.klines import OHLCV_SCHEMA
from coin_platform.storage.clickhouse import ClickHouseConfig, open_hot_store
from coin_platform.storage.object_store import ObjectStore
from coin_platform.storage.warehouse import DuckDBWarehouse
from coin_platform.storage.warehouse_tables import ohlcv_table
from coin_platform.trading.orders import Fill, OrderRequest, OrderResult
from coin_platform.trading.store import TradingStore
from coin_platform_tests.trading.support import NOW, make_decision

TODAY = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
DAY = TODAY.date()


def candles(start: dt.datetime, minutes: int, price: float) -> pl.DataFrame:
    times = [start + dt.timedelta(minutes=i) for i in range(minutes)]
    return pl.DataFrame(
        {
            "open_time": times,
            "open": [price + i for i in range(minutes)],
            "high": [price + i + 1 for i in range(minutes)],
            "low": [price + i - 1 for i in range(minutes)],
            "close": [price + i + 0.5 for i in range(minutes)],
            "volume": [1.0] * minutes,
            "quote_volume": [price] * minutes,
            "trades": [3] * minutes,
            "taker_buy_volume": [0.5] * minutes,
            "taker_buy_quote_volume": [price / 2] * minutes,
        }
    ).cast(OHLCV_SCHEMA)


def candidate(open_time: dt.datetime, symbol: str = "BTCUSDT") -> Candidate:
    return Candidate(
        strategy="ema_crossover",
        symbol=symbol,
        interval="1m",
        open_time=open_time,
        close_time=open_time + dt.timedelta(minutes=1, milliseconds=-1),
        signal="enter_long",
        price=100.0,
        detected_at=open_time + dt.timedelta(minutes=1),
    )


@dataclass
class State:
    trading: TradingStore
    warehouse: DuckDBWarehouse
    hot: ClickHouseConfig
    dagster_home: Path

    @property
    def parts(self) -> list[Part]:
        return [
            DuckDBFilePart("trading_store", self.trading.path, self.trading.lock_path),
            DuckDBFilePart("warehouse", self.warehouse.path, self.warehouse.lock_path),
            ChDBPart(self.hot),
            DagsterSqlitePart(self.dagster_home),
        ]

    def buy(self, symbol: str, quantity: float, price: float) -> None:
        decision = make_decision(symbol, "enter_long", price)
        order = OrderRequest(decision.id, symbol, "buy", quantity, False, price)
        result = OrderResult(decision.id, f"x-{symbol}", "paper", "FILLED", (Fill(price, quantity, 0.1, NOW),))
        with self.trading.transaction() as tx:
            tx.record_pending(decision, order, broker="paper", created_at=NOW)
            assert tx.record_outcome(order, result)

    def load_warehouse(self, symbol: str, price: float) -> None:
        frame = candles(TODAY, 30, price).with_columns(symbol=pl.lit(symbol)).select(["symbol", *OHLCV_SCHEMA])
        self.warehouse.load_partition(ohlcv_table("1m"), frame, DAY, symbol)

    def load_hot_store(self, symbol: str, price: float) -> None:
        with open_hot_store(self.hot, 3) as store:
            store.replace_ohlcv_day("1m", symbol, DAY, candles(TODAY, 60, price))
            store.write_candidates([candidate(TODAY, symbol)], {candidate(TODAY, symbol).id: None})

    def run_job(self) -> str:
        @dg.op
        def step() -> int:
            return 1

        @dg.job(name="recorded")
        def recorded() -> None:
            step()

        with self.instance() as instance:
            return recorded.execute_in_process(instance=instance).run_id

    def instance(self):
        """The sqlite instance in dagster_home (instance_for_test writes its dagster.yaml there)."""
        self.dagster_home.mkdir(parents=True, exist_ok=True)
        return dg.instance_for_test(temp_dir=str(self.dagster_home))

    def rows(self) -> dict[str, object]:
        """Everything a restore must bring back, as plain values."""
        with open_hot_store(self.hot, 3) as store:
            hot = {
                symbol: (
                    store.read_hot_ohlcv("1m", symbol, TODAY, TODAY + dt.timedelta(hours=1)).to_dicts(),
                    store.read_rollup("15m", symbol, TODAY, TODAY + dt.timedelta(hours=1)).to_dicts(),
                    store.read_candidates(symbol, "1m", TODAY, TODAY + dt.timedelta(hours=1))["id"].to_list(),
                )
                for symbol in ("BTCUSDT", "ETHUSDT")
            }
        with self.instance() as instance:
            runs = sorted((run.run_id, run.job_name, run.status.value) for run in instance.get_runs())
            events = {run_id: len(instance.all_logs(run_id)) for run_id, _, _ in runs}
        return {
            "orders": self.trading.orders().to_dicts(),
            "fills": self.trading.fills().to_dicts(),
            "positions": self.trading.positions().to_dicts(),
            "warehouse": self.warehouse.query("SELECT * FROM raw.ohlcv_1m ORDER BY symbol, open_time").to_dicts(),
            "hot": hot,
            "runs": runs,
            "events": events,
        }

    def wipe(self) -> None:
        for path in (self.trading.path, self.warehouse.path, Path(self.hot.path), self.dagster_home):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()


@pytest.fixture
def state(tmp_path: Path) -> State:
    home = tmp_path / "coin"
    made = State(
        trading=TradingStore(home / "trading" / "trading.duckdb"),
        warehouse=DuckDBWarehouse(home / "warehouse" / "warehouse.duckdb", lock_timeout_s=30),
        hot=ClickHouseConfig(path=str(home / "clickhouse" / "hot"), lock_timeout_s=30),
        dagster_home=home / "dagster_home",
    )
    made.buy("BTCUSDT", 0.01, 50_000.0)
    made.buy("ETHUSDT", 0.5, 3_000.0)
    made.load_warehouse("BTCUSDT", 50_000.0)
    made.load_hot_store("BTCUSDT", 50_000.0)
    made.load_hot_store("ETHUSDT", 3_000.0)
    made.run_job()
    return made


@pytest.fixture
def store(seaweedfs, s3_bucket: str) -> ObjectStore:
    return ObjectStore.s3(
        s3_bucket,
        endpoint_url=seaweedfs.endpoint_url,
        access_key=seaweedfs.access_key,
        secret_key=seaweedfs.secret_key,
        region=seaweedfs.region,
    )


def test_a_wiped_state_comes_back_with_every_row_position_and_run(state: State, store: ObjectStore, tmp_path: Path):
    before = state.rows()
    assert before["positions"] and before["warehouse"] and before["hot"]["ETHUSDT"][0] and before["runs"]

    result = create_backup(store, state.parts, retention_days=14)

    manifest = read_manifest(store, result.backup_id)
    assert sorted(manifest["included"]) == ["dagster", "hot_store", "trading_store", "warehouse"]
    assert manifest["included"]["trading_store"]["tables"]["main.orders"] == 2
    assert manifest["included"]["warehouse"]["tables"]["raw.ohlcv_1m"] == 30
    assert manifest["included"]["hot_store"]["tables"]["ohlcv_1m"] == 120
    assert "history/runs.db" in manifest["included"]["dagster"]["files"]
    assert {"python", "duckdb", "chdb", "dagster"} <= set(manifest["versions"])
    for entry in manifest["files"]:
        assert entry["key"].startswith(f"backups/{result.backup_id}/")
        assert len(store.read_bytes(entry["key"])) == entry["size"]
    assert result.bytes == sum(entry["size"] for entry in manifest["files"])

    state.wipe()
    restored = restore_backup(store, state.parts)

    assert restored.backup_id == result.backup_id
    assert sorted(restored.restored) == ["dagster", "hot_store", "trading_store", "warehouse"]
    assert state.rows() == before
    assert not [p.name for p in state.trading.path.parent.iterdir() if ".restore-" in p.name]


def test_a_restore_undoes_what_happened_after_the_backup(state: State, store: ObjectStore):
    before = state.rows()
    create_backup(store, state.parts, retention_days=14)
    state.buy("SOLUSDT", 2.0, 150.0)
    state.load_warehouse("ETHUSDT", 3_000.0)
    state.load_hot_store("BTCUSDT", 51_000.0)
    later_run = state.run_job()
    assert state.rows() != before

    restore_backup(store, state.parts)

    after = state.rows()
    assert after == before
    assert later_run not in [run_id for run_id, _, _ in after["runs"]]
    # The restored hot store keeps working: its rollup views still feed on inserts.
    state.load_hot_store("SOLUSDT", 150.0)
    with open_hot_store(state.hot, 3) as hot:
        assert hot.read_rollup("15m", "SOLUSDT", TODAY, TODAY + dt.timedelta(hours=1)).height == 4


def test_a_corrupted_object_is_refused_by_name_and_nothing_is_replaced(state: State, store: ObjectStore):
    result = create_backup(store, state.parts, retention_days=14)
    state.buy("SOLUSDT", 2.0, 150.0)
    changed = state.rows()
    hot_key = next(e["key"] for e in read_manifest(store, result.backup_id)["files"] if e["part"] == "hot_store")
    original = store.read_bytes(hot_key)
    store.write_bytes(hot_key, original[:-10] + b"0123456789")

    with pytest.raises(BackupCorrupted, match=f"{hot_key} is corrupted"):
        restore_backup(store, state.parts, result.backup_id)
    assert state.rows() == changed

    store.delete_many([hot_key])
    with pytest.raises(BackupCorrupted, match=f"{hot_key} is missing"):
        restore_backup(store, state.parts, result.backup_id)
    assert state.rows() == changed


def test_a_restore_is_refused_while_a_store_is_in_use(tmp_path: Path, store: ObjectStore):
    trading = TradingStore(tmp_path / "trading.duckdb")
    warehouse = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    warehouse.create_raw_tables()
    parts = [
        DuckDBFilePart("trading_store", trading.path, trading.lock_path),
        DuckDBFilePart("warehouse", warehouse.path, warehouse.lock_path),
    ]
    create_backup(store, parts, retention_days=14)
    State(trading, warehouse, ClickHouseConfig(path=str(tmp_path / "unused")), tmp_path).buy("SOLUSDT", 2.0, 150.0)
    held, release = threading.Event(), threading.Event()

    def hold_the_warehouse() -> None:
        with filelock.FileLock(warehouse.lock_path):
            held.set()
            release.wait(60)

    holder = threading.Thread(target=hold_the_warehouse)
    holder.start()
    held.wait(10)
    try:
        with pytest.raises(RestoreRefused, match=str(warehouse.lock_path)):
            restore_backup(store, parts, lock_timeout_s=0.5)
    finally:
        release.set()
        holder.join()
    assert trading.orders()["symbol"].to_list() == ["SOLUSDT"]  # the trading store was not replaced either


def test_a_restore_is_refused_while_the_dagster_daemon_runs(tmp_path: Path, store: ObjectStore):
    from dagster._daemon.types import DaemonHeartbeat

    state = State(
        TradingStore(tmp_path / "t.duckdb"),
        DuckDBWarehouse(tmp_path / "w.duckdb"),
        ClickHouseConfig(path=str(tmp_path / "unused")),
        tmp_path / "dagster_home",
    )
    run_id = state.run_job()
    parts = [DagsterSqlitePart(state.dagster_home)]
    create_backup(store, parts, retention_days=14)
    with state.instance() as instance:
        instance.add_daemon_heartbeat(DaemonHeartbeat(time.time(), "SCHEDULER", "daemon-1", None))
        instance.delete_run(run_id)

    with pytest.raises(RestoreRefused, match="Dagster daemon"):
        restore_backup(store, parts)
    with state.instance() as instance:
        assert instance.get_runs() == []


def test_retention_deletes_only_the_backups_older_than_it(tmp_path: Path, store: ObjectStore):
    trading = TradingStore(tmp_path / "trading.duckdb")
    trading.orders()
    parts = [DuckDBFilePart("trading_store", trading.path, trading.lock_path)]
    now = dt.datetime(2026, 6, 30, 3, 0, tzinfo=dt.UTC)
    for days_before in (20, 15, 13, 1):
        create_backup(store, parts, retention_days=30, now=now - dt.timedelta(days=days_before))
    store.write_bytes("backups/2026-06-01T030000Z/trading_store.duckdb.zst", b"an upload that never finished")
    store.write_bytes("backups-elsewhere/keep.txt", b"not a backup")
    store.write_bytes("backups/notes/readme.txt", b"not a backup either")

    result = create_backup(store, parts, retention_days=14, now=now)

    assert result.deleted == ["2026-06-01T030000Z", "2026-06-10T030000Z", "2026-06-15T030000Z"]
    assert list_backups(store) == ["2026-06-17T030000Z", "2026-06-29T030000Z", "2026-06-30T030000Z"]
    assert store.exists("backups-elsewhere/keep.txt") and store.exists("backups/notes/readme.txt")


def test_the_newest_backup_is_kept_however_old(tmp_path: Path, store: ObjectStore):
    trading = TradingStore(tmp_path / "trading.duckdb")
    trading.orders()
    parts = [DuckDBFilePart("trading_store", trading.path, trading.lock_path)]
    old = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    create_backup(store, parts, retention_days=1, now=old)
    create_backup(store, parts, retention_days=1, now=old + dt.timedelta(days=5))
    assert list_backups(store) == ["2020-01-06T000000Z"]


def test_a_store_with_nothing_to_back_up_is_listed_as_left_out(tmp_path: Path, store: ObjectStore):
    trading = TradingStore(tmp_path / "trading.duckdb")
    trading.orders()
    warehouse = tmp_path / "warehouse.duckdb"
    parts = [
        DuckDBFilePart("trading_store", trading.path, trading.lock_path),
        DuckDBFilePart("warehouse", warehouse, Path(f"{warehouse}.lock")),
    ]
    result = create_backup(store, parts, retention_days=14)
    manifest = json.loads(store.read_bytes(f"backups/{result.backup_id}/manifest.json"))
    assert manifest["excluded"] == {"warehouse": f"no DuckDB file at {warehouse}"}
    assert [entry["part"] for entry in manifest["files"]] == ["trading_store"]


def test_restoring_a_backup_that_is_not_there_names_its_manifest(tmp_path: Path, store: ObjectStore):
    trading = TradingStore(tmp_path / "trading.duckdb")
    parts = [DuckDBFilePart("trading_store", trading.path, trading.lock_path)]
    with pytest.raises(BackupError, match="no backup in"):
        restore_backup(store, parts)
    key = "backups/2020-01-01T000000Z/manifest.json"
    with pytest.raises(BackupError, match=f"backup 2020-01-01T000000Z has no manifest \\({store.uri}/{key}\\)"):
        restore_backup(store, parts, "2020-01-01T000000Z")
    with pytest.raises(BackupError, match="'yesterday' is not a backup id"):
        restore_backup(store, parts, "yesterday")
