"""The warehouse's raw tables on DuckDB (a file) and on Snowflake (a fakesnow server): partition loads
that replace exactly their rows, refuse frames that do not fit, and serialise DuckDB writers."""

from __future__ import annotations

import contextlib
import datetime as dt
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
import snowflake.connector
from polars.testing import assert_frame_equal

from coin_platform.core.time import UTC_MS
from coin_platform.market.klines import OHLCV_SCHEMA
from coin_platform.storage.object_store import ObjectStore
from coin_platform.storage.ohlcv import read_ohlcv_day, write_ohlcv_day
from coin_platform.storage.warehouse import (
    DuckDBWarehouse,
    SnowflakeWarehouse,
    WarehouseLocked,
    WarehouseSchemaError,
    snowpipe_sql,
)
from coin_platform.storage.warehouse_tables import RAW_TABLES
from coin_platform_tests.shared_data import lean_minute_bars

DAY = dt.date(2022, 12, 13)
SYMBOL = "ADAUSDT"
SNOWPIPE_DIR = Path(__file__).resolve().parents[2] / "dbt_snowflake" / "snowpipe"


def real_day() -> pl.DataFrame:
    """A real Binance USD-M day (ADAUSDT 1m, Lean's capture) in the platform's OHLCV schema."""
    bars = lean_minute_bars("binance/lean/cryptofuture/minute/adausdt/20221213_trade.zip", DAY)
    return (
        bars.with_columns(
            quote_volume=pl.col("close") * pl.col("volume"),
            trades=pl.lit(0, pl.Int64),
            taker_buy_volume=pl.col("volume") / 2,
            taker_buy_quote_volume=pl.col("close") * pl.col("volume") / 2,
        )
        .select(list(OHLCV_SCHEMA))
        .cast(OHLCV_SCHEMA)
    )


@pytest.fixture(scope="module")
def stored_day(seaweedfs) -> pl.DataFrame:
    """The real day written to and read back from SeaweedFS by the platform's OHLCV writer and reader."""
    bucket = "warehouse-storage-test"
    seaweedfs.client().create_bucket(Bucket=bucket)
    store = ObjectStore.s3(
        bucket,
        endpoint_url=seaweedfs.endpoint_url,
        access_key=seaweedfs.access_key,
        secret_key=seaweedfs.secret_key,
        region=seaweedfs.region,
    )
    write_ohlcv_day(store, "1m", SYMBOL, DAY, real_day(), hours_closed=24, only_missing=False)
    frame = read_ohlcv_day(store, "1m", SYMBOL, DAY)
    return frame.select(pl.lit(SYMBOL).alias("symbol"), pl.all())


def test_a_partition_from_the_object_store_loads_and_reloads_to_the_same_rows(tmp_path, stored_day):
    warehouse = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    assert warehouse.load_partition("ohlcv_1m", stored_day, DAY, SYMBOL) == stored_day.height > 1000
    first = warehouse.query(f"SELECT * FROM raw.ohlcv_1m WHERE symbol = '{SYMBOL}' ORDER BY open_time")
    assert first["open_time"].dtype == pl.Datetime("us", "UTC")
    assert_frame_equal(
        first.with_columns(pl.col("open_time").cast(UTC_MS)), stored_day.sort("open_time"), check_exact=True
    )

    # The next day and another symbol stay as they are when the partition is loaded again.
    neighbour = stored_day.with_columns(pl.col("open_time") + dt.timedelta(days=1))
    warehouse.load_partition("ohlcv_1m", neighbour, DAY + dt.timedelta(days=1), SYMBOL)
    other = stored_day.with_columns(symbol=pl.lit("BTCUSDT"))
    warehouse.load_partition("ohlcv_1m", other, DAY, "BTCUSDT")
    assert warehouse.load_partition("ohlcv_1m", stored_day, DAY, SYMBOL) == stored_day.height
    again = warehouse.query(
        f"SELECT * FROM raw.ohlcv_1m WHERE symbol = '{SYMBOL}' AND open_time < TIMESTAMPTZ '2022-12-14' "
        "ORDER BY open_time"
    )
    assert_frame_equal(again, first, check_exact=True)
    counts = warehouse.query("SELECT symbol, count(*) AS n FROM raw.ohlcv_1m GROUP BY symbol ORDER BY symbol")
    assert counts.rows() == [("ADAUSDT", 2 * stored_day.height), ("BTCUSDT", stored_day.height)]

    # A day without rows replaces what the partition held with nothing.
    assert warehouse.load_partition("ohlcv_1m", stored_day.clear(), DAY, "BTCUSDT") == 0
    assert warehouse.query("SELECT count(*) AS n FROM raw.ohlcv_1m WHERE symbol = 'BTCUSDT'")["n"][0] == 0


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda f: f.with_columns(pl.col("close").cast(pl.String)), "column close is String"),
        (lambda f: f.drop("trades"), "columns missing ['trades']"),
        (lambda f: f.with_columns(extra=pl.lit(1)), "not in the table ['extra']"),
        (lambda f: f.with_columns(pl.col("open_time").dt.replace_time_zone(None)), "column open_time is"),
        (lambda f: f.with_columns(pl.col("open_time") + dt.timedelta(hours=12)), "column open_time puts 720 row"),
        (lambda f: f.with_columns(symbol=pl.lit("BTCUSDT")), "column symbol holds 1440 row"),
        (lambda f: pl.concat([f, f.head(1)]), "key (symbol, open_time) repeats"),
    ],
)
def test_a_frame_that_does_not_fit_is_refused_naming_the_problem_and_nothing_changes(
    tmp_path, stored_day, change, named
):
    warehouse = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    warehouse.load_partition("ohlcv_1m", stored_day, DAY, SYMBOL)
    with pytest.raises(WarehouseSchemaError) as refused:
        warehouse.load_partition("ohlcv_1m", change(stored_day), DAY, SYMBOL)
    assert named in str(refused.value) and "ohlcv_1m 2022-12-13 ADAUSDT" in str(refused.value)
    assert warehouse.query("SELECT count(*) AS n FROM raw.ohlcv_1m")["n"][0] == stored_day.height


def test_an_unknown_table_is_refused():
    with pytest.raises(WarehouseSchemaError, match="'ohlcv_5m' is not a raw warehouse table"):
        DuckDBWarehouse("unused.duckdb").load_partition("ohlcv_5m", pl.DataFrame(), DAY)


@contextlib.contextmanager
def held_in_another_process(path: Path, how: str) -> Iterator[subprocess.Popen]:
    """Another process holding the warehouse (`exclusive`: the writers' lock, `writer`: the open file)
    until the block ends."""
    script = textwrap.dedent(f"""
        import sys
        from coin_platform.storage.warehouse import DuckDBWarehouse
        warehouse = DuckDBWarehouse({str(path)!r})
        with warehouse.{how}("materializing warehouse_ohlcv_1m"):
            print("held", flush=True)
            sys.stdin.readline()
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "held"
        yield child
    finally:
        child.stdin.close()
        child.wait(timeout=30)


def test_a_held_writer_lock_fails_the_next_writer_naming_the_holder(tmp_path, stored_day):
    path = tmp_path / "warehouse.duckdb"
    with held_in_another_process(path, "exclusive") as holder:
        waiting = DuckDBWarehouse(path, lock_timeout_s=0.5)
        with pytest.raises(WarehouseLocked) as locked:
            waiting.load_partition("ohlcv_1m", stored_day, DAY, SYMBOL)
    message = str(locked.value)
    assert "materializing warehouse_ohlcv_1m" in message and f"pid {holder.pid}" in message
    assert not path.exists()  # nothing was opened, let alone written
    # Released: the next writer goes ahead.
    assert DuckDBWarehouse(path).load_partition("ohlcv_1m", stored_day, DAY, SYMBOL) == stored_day.height


def test_readers_open_read_only_and_wait_while_a_writer_holds_the_file(tmp_path, stored_day):
    path = tmp_path / "warehouse.duckdb"
    DuckDBWarehouse(path).load_partition("ohlcv_1m", stored_day, DAY, SYMBOL)
    with held_in_another_process(path, "writer") as writer:
        impatient = DuckDBWarehouse(path, lock_timeout_s=0.3)
        with pytest.raises(WarehouseLocked, match=f"PID {writer.pid}"):
            impatient.query("SELECT count(*) FROM raw.ohlcv_1m")
    reader = DuckDBWarehouse(path)
    assert reader.query("SELECT count(*) AS n FROM raw.ohlcv_1m")["n"][0] == stored_day.height
    with reader.reader() as connection, pytest.raises(Exception, match="read-only"):
        connection.execute("DELETE FROM raw.ohlcv_1m")
    assert reader.query("SELECT count(*) AS n FROM raw.ohlcv_1m")["n"][0] == stored_day.height


# ---------------------------------------------------------------- Snowflake (fakesnow)


@pytest.fixture
def snowflake_warehouse(fakesnow_server, snowflake_database) -> SnowflakeWarehouse:
    """The Snowflake warehouse over plain connector connections to the fakesnow server, key-pair signed."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    @contextlib.contextmanager
    def connect():
        connection = snowflake.connector.connect(
            account="coin",
            user="loader",
            private_key=key,
            database=snowflake_database,
            session_parameters={"TIMEZONE": "UTC"},
            **fakesnow_server.connection_args(),
        )
        try:
            connection.cursor().execute(f"CREATE DATABASE IF NOT EXISTS {snowflake_database}")
            yield connection
        finally:
            connection.close()

    return SnowflakeWarehouse(connect)


def test_snowflake_creates_every_raw_table_with_the_columns_in_order(snowflake_warehouse):
    assert snowflake_warehouse.create_raw_tables() == list(RAW_TABLES)
    for table in RAW_TABLES.values():
        assert snowflake_warehouse.query(f"SELECT * FROM raw.{table.name} LIMIT 0").columns == list(table.columns)


def test_snowflake_partition_loads_by_stage_and_copy_and_reloads_to_the_same_rows(snowflake_warehouse, stored_day):
    assert snowflake_warehouse.load_partition("ohlcv_1m", stored_day, DAY, SYMBOL) == stored_day.height
    other = stored_day.with_columns(symbol=pl.lit("BTCUSDT"))
    snowflake_warehouse.load_partition("ohlcv_1m", other, DAY, "BTCUSDT")
    first = snowflake_warehouse.query(f"SELECT * FROM raw.ohlcv_1m WHERE symbol = '{SYMBOL}' ORDER BY open_time")
    expected = stored_day.sort("open_time")
    assert_frame_equal(first.with_columns(pl.col("open_time").cast(UTC_MS)), expected, check_exact=True)

    snowflake_warehouse.load_partition("ohlcv_1m", stored_day, DAY, SYMBOL)
    again = snowflake_warehouse.query(f"SELECT * FROM raw.ohlcv_1m WHERE symbol = '{SYMBOL}' ORDER BY open_time")
    assert_frame_equal(again, first, check_exact=True)
    counts = snowflake_warehouse.query("SELECT symbol, count(*) AS n FROM raw.ohlcv_1m GROUP BY symbol ORDER BY symbol")
    assert counts.rows() == [("ADAUSDT", stored_day.height), ("BTCUSDT", stored_day.height)]
    # Every load's file was purged from the stage.
    assert snowflake_warehouse.query("LIST @raw.load_stage").height == 0

    with pytest.raises(WarehouseSchemaError, match="column volume is String"):
        snowflake_warehouse.load_partition(
            "ohlcv_1m", stored_day.with_columns(pl.col("volume").cast(pl.String)), DAY, SYMBOL
        )
    assert snowflake_warehouse.query("SELECT count(*) AS n FROM raw.ohlcv_1m")["n"][0] == 2 * stored_day.height


def test_the_snowpipe_definitions_are_generated_from_the_raw_tables():
    stored = {path.stem: path.read_text() for path in SNOWPIPE_DIR.glob("*.sql")}
    assert stored == {name: snowpipe_sql(table) for name, table in RAW_TABLES.items()}, (
        "regenerate dbt_snowflake/snowpipe/ from RAW_TABLES with coin_platform.storage.warehouse.snowpipe_sql"
    )
