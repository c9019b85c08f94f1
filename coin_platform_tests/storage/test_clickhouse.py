"""The ClickHouse hot store against real chDB in temporary directories."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import time
from pathlib import Path

import filelock
import numpy as np
import polars as pl
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from coin_platform.features import FEATURE_COLUMNS, FEATURE_SCHEMA
from coin_platform.market.klines import OHLCV_SCHEMA, resample_ohlcv
from coin_platform.storage import clickhouse
from coin_platform.storage.clickhouse import (
    MIGRATIONS,
    TTL_TABLES,
    ClickHouseConfig,
    ClickHouseLockTimeout,
    HotStore,
    compare_rollup,
    feature_column_ddl,
    hot_counts,
    migrate,
    open_clickhouse,
    open_hot_store,
)

DAY = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
START = dt.datetime(DAY.year, DAY.month, DAY.day, tzinfo=dt.UTC)
END = START + dt.timedelta(days=1)


def minute_day(seed: int, day: dt.date = DAY, minutes: int = 1440) -> pl.DataFrame:
    """Random but well-formed 1m candles for one day (OHLCV_SCHEMA)."""
    rng = np.random.default_rng(seed)
    start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    close = 100 + np.cumsum(rng.normal(0, 0.1, minutes)).round(2)
    open_ = np.concatenate([[100.0], close[:-1]])
    spread = rng.uniform(0, 0.2, minutes).round(2)
    volume = rng.uniform(1, 50, minutes).round(3)
    return pl.DataFrame(
        {
            "open_time": [start + dt.timedelta(minutes=i) for i in range(minutes)],
            "open": open_,
            "high": np.maximum(open_, close) + spread,
            "low": np.minimum(open_, close) - spread,
            "close": close,
            "volume": volume,
            "quote_volume": (volume * close).round(5),
            "trades": rng.integers(1, 500, minutes),
            "taker_buy_volume": (volume / 2).round(3),
            "taker_buy_quote_volume": (volume * close / 2).round(5),
        }
    ).cast(OHLCV_SCHEMA)


@pytest.fixture
def config(tmp_path: Path) -> ClickHouseConfig:
    return ClickHouseConfig(path=str(tmp_path / "hot.chdb"), lock_timeout_s=60)


def test_migrations_are_idempotent_and_schema_is_visible(config):
    with open_clickhouse(config) as client:
        assert migrate(client, retention_days=3) == [1, 2, 3, 4, 5, 6]
        assert migrate(client, retention_days=3) == []
    with open_clickhouse(config) as client:
        assert migrate(client, retention_days=3) == []
        versions = client.query_arrow("SELECT version FROM coin.schema_migrations ORDER BY version")
        assert pl.from_arrow(versions)["version"].to_list() == [1, 2, 3, 4, 5, 6]
        tables = pl.from_arrow(
            client.query_arrow(
                "SELECT name, engine, sorting_key, partition_key, engine_full "
                "FROM system.tables WHERE database = 'coin' ORDER BY name"
            )
        )
    rows = {r["name"]: r for r in tables.iter_rows(named=True)}
    assert "candidates" in rows and "decisions" not in rows  # decisions moved to the trading store
    for interval in ("1m", "15m", "1h"):
        table = rows[f"ohlcv_{interval}"]
        assert table["engine"] == "ReplacingMergeTree"
        assert "ReplacingMergeTree(version)" in table["engine_full"]
        assert table["sorting_key"] == "symbol, open_time"
        assert table["partition_key"] == "toDate(open_time)"
        assert "TTL toDateTime(open_time) + toIntervalDay(3)" in table["engine_full"]
    for interval in ("15m", "1h"):
        assert rows[f"ohlcv_{interval}_from_1m"]["engine"] == "AggregatingMergeTree"
        assert rows[f"ohlcv_{interval}_from_1m"]["sorting_key"] == "symbol, open_time, version"
        assert rows[f"ohlcv_{interval}_from_1m_mv"]["engine"] == "MaterializedView"
    for interval in ("1m", "15m", "1h"):
        assert "ReplacingMergeTree(version)" in rows[f"features_{interval}"]["engine_full"]


def test_a_process_migrates_each_hot_store_once_however_often_it_opens_it(config, monkeypatch):
    """open_hot_store runs the migrations on the first open of a target only; reads of
    schema_migrations are how a migration run shows."""
    reads = []
    real_migrate = clickhouse.migrate

    def counting_migrate(client, retention_days, database="coin"):
        reads.append(database)
        return real_migrate(client, retention_days, database)

    monkeypatch.setattr(clickhouse, "migrate", counting_migrate)
    with open_hot_store(config, retention_days=3) as first:
        assert first.migrations_applied == [1, 2, 3, 4, 5, 6]
    with open_hot_store(config, retention_days=3) as second:
        assert second.migrations_applied == []
        assert isinstance(second, HotStore) and second.database == "coin"
        assert second.hot_counts("1m", ["BTCUSDT"], [DAY]) == {("BTCUSDT", DAY): 0}
    assert reads == ["coin"]
    # Another database at the same path, or another retention, is another target.
    other = ClickHouseConfig(path=config.path, database="other", lock_timeout_s=60)
    with open_hot_store(other, retention_days=3) as store:
        assert store.migrations_applied == [1, 2, 3, 4, 5, 6]
    with open_hot_store(config, retention_days=1) as store:
        assert store.migrations_applied == [] and store.ttl_days("ohlcv_1m") == 1
    assert reads == ["coin", "other", "coin"]


# Migration 3's statement for features_1m as it was applied: it must never change.
MIGRATION_3_FEATURES_1M = """
CREATE TABLE IF NOT EXISTS coin.features_1m (
    symbol LowCardinality(String),
    open_time DateTime64(3, 'UTC'),
    close Float64,
    volume Float64,
    ema_20 Nullable(Float64),
    ema_50 Nullable(Float64),
    rsi_14 Nullable(Float64),
    macd Nullable(Float64),
    macd_signal Nullable(Float64),
    macd_hist Nullable(Float64),
    bb_upper Nullable(Float64),
    bb_middle Nullable(Float64),
    bb_lower Nullable(Float64),
    atr_14 Nullable(Float64),
    zone_low Nullable(Float64),
    zone_high Nullable(Float64),
    zone_volume_share Nullable(Float64),
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toDate(open_time)
ORDER BY (symbol, open_time)
TTL toDateTime(open_time) + INTERVAL 3 DAY
"""


def test_the_feature_tables_hold_feature_schema_and_migration_3_is_unchanged(config):
    migration = next(statements for version, _, statements in MIGRATIONS if version == 3)
    assert migration("coin", 3)[0] == MIGRATION_3_FEATURES_1M
    with open_clickhouse(config) as client:
        migrate(client, retention_days=3)
        columns = pl.from_arrow(
            client.query_arrow(
                "SELECT table, name, type FROM system.columns WHERE database = 'coin' "
                "AND table LIKE 'features_%' ORDER BY table, position"
            )
        )
    for interval in ("1m", "15m", "1h"):
        table = columns.filter(pl.col("table") == f"features_{interval}")
        stored = [f"{name} {type_}" for name, type_ in table.select("name", "type").iter_rows()]
        assert stored[1:-1] == [feature_column_ddl(name) for name in FEATURE_COLUMNS]
        assert [r.split()[0] for r in stored[1:-1]] == list(FEATURE_SCHEMA)


def _features(day: dt.date, seed: int, rows: int = 1440) -> pl.DataFrame:
    """A day of feature rows in FEATURE_SCHEMA, with the warm-up nulls of the first candles."""
    rng = np.random.default_rng(seed)
    start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    frame = pl.DataFrame(
        {
            name: pl.Series(
                name,
                [start + dt.timedelta(minutes=m) for m in range(rows)]
                if name == "open_time"
                else rng.normal(100, 5, rows),
                dtype=dtype,
            )
            for name, dtype in FEATURE_SCHEMA.items()
        }
    )
    return frame.with_columns(pl.when(pl.int_range(pl.len()) >= 49).then(pl.col("ema_50")).alias("ema_50"))


def test_feature_tables_hold_each_day_once_and_serve_the_latest_row_per_symbol(config):
    with open_hot_store(config, retention_days=3) as store:
        client = store.client
        btc = _features(DAY, seed=1)
        for _ in range(2):  # a rerun replaces the day
            assert store.replace_features_day("1m", "BTCUSDT", DAY, btc) == 1440
        store.replace_features_day("1m", "ETHUSDT", DAY, _features(DAY, seed=2, rows=600))
        stored = client.command("SELECT count() FROM coin.features_1m FINAL")
        columns = pl.from_arrow(client.query_arrow("SELECT * FROM coin.features_1m LIMIT 0")).columns
        latest = store.latest_features("1m", ["BTCUSDT", "ETHUSDT", "SOLUSDT"])
        first = pl.from_arrow(
            client.query_arrow("SELECT ema_50 FROM coin.features_1m FINAL WHERE symbol = 'BTCUSDT' ORDER BY open_time")
        )
        with pytest.raises(ValueError, match="not on"):
            store.replace_features_day("1m", "BTCUSDT", DAY + dt.timedelta(days=1), btc)
        store.replace_features_day("1m", "BTCUSDT", DAY, btc.head(1000))  # candles gone: deleted
        shrunk = client.command("SELECT count() FROM coin.features_1m FINAL WHERE symbol = 'BTCUSDT'")
    assert stored == 1440 + 600
    assert shrunk == 1000
    assert columns == ["symbol", *FEATURE_COLUMNS, "version"]
    assert latest["symbol"].to_list() == ["BTCUSDT", "ETHUSDT"]  # SOLUSDT has none
    midnight = dt.datetime(DAY.year, DAY.month, DAY.day, tzinfo=dt.UTC)
    assert latest["open_time"].to_list() == [midnight + dt.timedelta(minutes=m) for m in (1439, 599)]
    assert latest.filter(pl.col("symbol") == "BTCUSDT")["rsi_14"].item() == btc["rsi_14"][-1]
    assert first["ema_50"].null_count() == 49  # warm-up nulls survive the round trip


def test_a_retention_change_is_applied_to_every_table(config):
    with open_hot_store(config, retention_days=3) as store:
        assert store.migrate(1) == []
        assert {t: store.ttl_days(t) for t in TTL_TABLES} == dict.fromkeys(TTL_TABLES, 1)
        with pytest.raises(ValueError, match="1 to 3"):
            store.migrate(5)


def test_rerunning_a_day_neither_duplicates_rows_nor_the_rollup(config):
    btc, eth = minute_day(1), minute_day(2)
    with open_hot_store(config, retention_days=3) as store:
        client = store.client
        for _ in range(2):  # the rerun
            assert store.replace_ohlcv_day("1m", "BTCUSDT", DAY, btc) == 1440
            store.replace_ohlcv_day("1m", "ETHUSDT", DAY, eth)
            for interval in ("15m", "1h"):
                store.replace_ohlcv_day(interval, "BTCUSDT", DAY, resample_ohlcv(btc, interval).drop("candles"))
        assert store.hot_counts("1m", ["BTCUSDT", "ETHUSDT", "SOLUSDT"], [DAY]) == {
            ("BTCUSDT", DAY): 1440,
            ("ETHUSDT", DAY): 1440,
            ("SOLUSDT", DAY): 0,
        }
        # Unmerged raw rows too: the rerun's rows replaced the first run's, not joined them.
        assert client.command("SELECT count() FROM coin.ohlcv_1m") == 2880
        assert store.read_hot_ohlcv("1m", "BTCUSDT", START, END).equals(btc)
        for interval, buckets in (("15m", 96), ("1h", 24)):
            rollup = store.read_rollup(interval, "BTCUSDT", START, END)
            expected = resample_ohlcv(btc, interval)
            assert rollup.height == buckets
            assert rollup["candles"].to_list() == expected["candles"].to_list()
            assert rollup.select("open", "high", "low", "close", "trades").equals(
                expected.select("open", "high", "low", "close", "trades")
            )
            coarse = store.read_hot_ohlcv(interval, "BTCUSDT", START, END)
            comparison = compare_rollup(coarse, rollup, interval)
            assert comparison.passed and comparison.compared == buckets
        assert store.latest_closed("1m", ["BTCUSDT", "SOLUSDT"]) == {
            "BTCUSDT": START + dt.timedelta(minutes=1439),
            "SOLUSDT": None,
        }


def test_a_plain_reinsert_would_double_the_rollup_which_the_comparison_catches(config):
    """Why replace_ohlcv_day deletes the older versions: FINAL dedupes 1m, but the MV saw both inserts."""
    btc = minute_day(3)
    with open_hot_store(config, retention_days=3) as store:
        store.insert_ohlcv("1m", "BTCUSDT", btc, version=1)
        store.insert_ohlcv("1m", "BTCUSDT", btc, version=2)
        store.replace_ohlcv_day("1h", "BTCUSDT", DAY, resample_ohlcv(btc, "1h").drop("candles"))
        assert store.hot_counts("1m", ["BTCUSDT"], [DAY])[("BTCUSDT", DAY)] == 1440
        rollup = store.read_rollup("1h", "BTCUSDT", START, END)
        assert set(rollup["candles"].to_list()) == {120}
        coarse = store.read_hot_ohlcv("1h", "BTCUSDT", START, END)
        assert compare_rollup(coarse, rollup, "1h").compared == 0  # no bucket looks complete
        # Replacing the day repairs it.
        store.replace_ohlcv_day("1m", "BTCUSDT", DAY, btc)
        rollup = store.read_rollup("1h", "BTCUSDT", START, END)
        assert compare_rollup(coarse, rollup, "1h").compared == 24
        assert compare_rollup(coarse, rollup, "1h").passed


def _assert_rollups_exact(store: HotStore, symbol: str, minutes: pl.DataFrame) -> None:
    """Each rollup holds one set of states per 1m row: prices, trades and counts exact, sums to 1e-9."""
    for interval in ("15m", "1h"):
        rollup = store.read_rollup(interval, symbol, START, END)
        expected = resample_ohlcv(minutes, interval)
        exact = ["open_time", "open", "high", "low", "close", "trades", "candles"]
        assert rollup.select(exact).equals(expected.select(exact).cast(rollup.select(exact).schema)), interval
        assert compare_rollup(expected.drop("candles"), rollup, interval).passed, interval


def _repaired(minutes: pl.DataFrame) -> pl.DataFrame:
    """Another version of the day: every price 1 % higher and the 10:00 candle gone."""
    prices = [pl.col(c) * 1.01 for c in ("open", "high", "low", "close")]
    return minutes.with_columns(prices).filter(pl.col("open_time") != START + dt.timedelta(hours=10))


@pytest.mark.parametrize(
    "refusing",
    [
        "ohlcv_1m",  # the server refuses the insert outright
        "ohlcv_1h_from_1m",  # the 1m rows and their 15m rollup land, then the 1h view refuses them
    ],
)
def test_a_repair_whose_insert_fails_leaves_the_day_and_its_rollups_as_they_were(config, refusing):
    btc, eth = minute_day(5), minute_day(6)
    with open_hot_store(config, retention_days=3) as store:
        client = store.client
        store.replace_ohlcv_day("1m", "BTCUSDT", DAY, btc)
        store.replace_ohlcv_day("1m", "ETHUSDT", DAY, eth)
        # A real server-side fault: from now on the table refuses BTCUSDT rows.
        client.command(f"ALTER TABLE coin.{refusing} ADD CONSTRAINT refuse CHECK symbol != 'BTCUSDT'")
        with pytest.raises(DatabaseError, match="Constraint `refuse`"):
            store.replace_ohlcv_day("1m", "BTCUSDT", DAY, _repaired(btc))
        assert store.read_hot_ohlcv("1m", "BTCUSDT", START, END).equals(btc)
        assert client.command("SELECT count() FROM coin.ohlcv_1m WHERE symbol = 'BTCUSDT'") == 1440
        _assert_rollups_exact(store, "BTCUSDT", btc)
        _assert_rollups_exact(store, "ETHUSDT", eth)

        client.command(f"ALTER TABLE coin.{refusing} DROP CONSTRAINT refuse")
        assert store.replace_ohlcv_day("1m", "BTCUSDT", DAY, _repaired(btc)) == 1439
        assert store.read_hot_ohlcv("1m", "BTCUSDT", START, END).equals(_repaired(btc))
        assert client.command("SELECT count() FROM coin.ohlcv_1m WHERE symbol = 'BTCUSDT'") == 1439
        _assert_rollups_exact(store, "BTCUSDT", _repaired(btc))
        _assert_rollups_exact(store, "ETHUSDT", eth)


def test_a_feature_repair_whose_insert_fails_leaves_the_days_features_as_they_were(config):
    before = _features(DAY, seed=7)
    with open_hot_store(config, retention_days=3) as store:
        client = store.client
        store.replace_features_day("1m", "BTCUSDT", DAY, before)
        client.command("ALTER TABLE coin.features_1m ADD CONSTRAINT refuse CHECK symbol != 'BTCUSDT'")
        with pytest.raises(DatabaseError, match="Constraint `refuse`"):
            store.replace_features_day("1m", "BTCUSDT", DAY, _features(DAY, seed=8, rows=1000))
        stored = pl.from_arrow(
            client.query_arrow(
                "SELECT * EXCEPT (symbol, version) FROM coin.features_1m FINAL "
                "WHERE symbol = 'BTCUSDT' ORDER BY open_time"
            )
        )
    assert stored.equals(before)


def test_rows_outside_the_day_are_refused(config):
    with open_hot_store(config, retention_days=3) as store:
        with pytest.raises(ValueError, match="not on"):
            store.replace_ohlcv_day("1m", "BTCUSDT", DAY + dt.timedelta(days=1), minute_day(4))


def test_the_password_is_not_in_the_repr():
    config = ClickHouseConfig(mode="server", host="db.internal", password="hunter2")
    assert "hunter2" not in repr(config)


def test_a_held_lock_times_out_naming_the_path_and_holder(config):
    Path(config.lock_path).parent.mkdir(parents=True, exist_ok=True)
    Path(f"{config.path}.lock.holder").write_text("pid 4242 on elsewhere")
    with filelock.FileLock(config.lock_path):
        impatient = ClickHouseConfig(path=config.path, lock_timeout_s=0.2)
        with pytest.raises(ClickHouseLockTimeout, match="pid 4242") as raised:
            with open_clickhouse(impatient):
                pass
    assert config.path in str(raised.value)


def _write_symbol(path: str, symbol: str, seed: int, barrier, results) -> None:
    """Spawned writer: waits for its sibling, then opens, migrates, inserts, and holds a moment."""
    config = ClickHouseConfig(path=path, lock_timeout_s=60)
    barrier.wait(timeout=60)
    try:
        with open_hot_store(config, retention_days=3) as store:
            store.replace_ohlcv_day("1m", symbol, DAY, minute_day(seed))
            time.sleep(0.5)  # keep the path busy so the sibling really has to wait
        results.put((symbol, "ok"))
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        results.put((symbol, f"{type(exc).__name__}: {exc}"))


def _open_without_lock(path: str, results) -> None:
    import clickhouse_connect

    try:
        client = clickhouse_connect.get_client(interface="chdb", path=path)
        client.close()
        results.put("opened")
    except Exception as exc:  # noqa: BLE001
        results.put(f"{type(exc).__name__}: {exc}")


def test_two_processes_writing_at_once_both_succeed(config):
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    workers = [
        ctx.Process(target=_write_symbol, args=(config.path, symbol, seed, barrier, results))
        for symbol, seed in (("BTCUSDT", 5), ("ETHUSDT", 6))
    ]
    for worker in workers:
        worker.start()
    outcome = dict(results.get(timeout=120) for _ in workers)
    for worker in workers:
        worker.join(timeout=30)
    assert outcome == {"BTCUSDT": "ok", "ETHUSDT": "ok"}
    with open_clickhouse(config) as client:
        counts = hot_counts(client, "1m", ["BTCUSDT", "ETHUSDT"], [DAY])
        migrations = client.command("SELECT count() FROM coin.schema_migrations FINAL")
    assert counts == {("BTCUSDT", DAY): 1440, ("ETHUSDT", DAY): 1440}
    assert migrations == len(MIGRATIONS)  # each applied once, by whichever process came first


def test_without_the_lock_a_second_process_fails(config):
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    with open_clickhouse(config) as client:
        client.command("SELECT 1")
        intruder = ctx.Process(target=_open_without_lock, args=(config.path, results))
        intruder.start()
        outcome = results.get(timeout=120)
        intruder.join(timeout=30)
    assert outcome != "opened" and "lock" in outcome.lower()
