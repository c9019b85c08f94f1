"""The same dbt project through dbt-snowflake, against a fakesnow server (Snowflake SQL emulated on DuckDB).

Proves the models' SQL is Snowflake SQL too (the adapter.dispatch branches, the cross-database macros,
delete+insert by day): a full build and a one-day incremental build of every model and test pass over a
slice of the platform's data, and the training set's labels are those of the duckdb build.
"""

import json
from pathlib import Path

import polars as pl
import snowflake.connector
import yaml

from coin_platform.core.intervals import SUPPORTED_INTERVALS
from coin_platform.core.time import UTC_MS
from coin_platform.local.replay.warehouse import RawData, run_dbt
from coin_platform.storage.warehouse import create_table_sql
from coin_platform.storage.warehouse_tables import RAW_SCHEMA, RAW_TABLES
from coin_platform_tests.fixtures.warehouse import FakeSnowflake

DATABASE = "COIN"
SLICE_CANDLES = 240  # of each interval and symbol: enough for candidates and their horizons


def _slice(raw: RawData) -> dict[str, pl.DataFrame]:
    """The first SLICE_CANDLES candles (and features) of every interval and symbol, and the records on them."""
    market = [name for name in RAW_TABLES if name.startswith(("ohlcv_", "features_"))]
    tables = {name: raw.tables[name].sort("open_time").group_by("symbol").head(SLICE_CANDLES) for name in market}
    last_candle = pl.DataFrame(
        {
            "interval": list(SUPPORTED_INTERVALS),
            "last_open_time": [tables[f"ohlcv_{interval}"]["open_time"].max() for interval in SUPPORTED_INTERVALS],
        },
        schema_overrides={"last_open_time": UTC_MS},
    )
    tables["candidates"] = (
        raw.tables["candidates"]
        .join(last_candle, on="interval")
        .filter(pl.col("open_time") <= pl.col("last_open_time"))
        .drop("last_open_time")
    )
    tables["decisions"] = raw.tables["decisions"].join(tables["candidates"].select("candidate_id"), on="candidate_id")
    tables["orders"] = raw.tables["orders"].join(tables["decisions"].select("decision_id"), on="decision_id")
    tables["fills"] = raw.tables["fills"].join(tables["orders"].select("client_order_id"), on="client_order_id")
    return tables


def _load(server: FakeSnowflake, tables: dict[str, pl.DataFrame]) -> None:
    connection = snowflake.connector.connect(
        user="fake", password="snow", account="fakesnow", **server.connection_args()
    )
    with connection, connection.cursor() as cursor:
        cursor.execute(f"create database if not exists {DATABASE}")
        cursor.execute(f"use database {DATABASE}")
        cursor.execute(f"create schema if not exists {RAW_SCHEMA}")
        for name, table in RAW_TABLES.items():
            cursor.execute(create_table_sql(table, "snowflake"))
            frame = tables[name].with_columns(
                pl.col(c).dt.strftime("%Y-%m-%d %H:%M:%S.%3f+00:00")
                for c, dtype in table.columns.items()
                if isinstance(dtype, pl.Datetime)
            )
            if frame.height:
                placeholders = ", ".join(["%s"] * frame.width)
                cursor.executemany(f"insert into {DATABASE}.{RAW_SCHEMA}.{name} values ({placeholders})", frame.rows())


def _profile(directory: Path, server: FakeSnowflake) -> Path:
    """A profile whose snowflake output is the fakesnow server (the project's prod output needs real keys)."""
    output = {
        "type": "snowflake",
        "account": "fakesnow",
        "user": "fake",
        "password": "snow",
        **server.connection_args(),
        "database": DATABASE,
        "schema": "main",
        "warehouse": "fake",
        "threads": 1,
    }
    directory.mkdir(parents=True, exist_ok=True)
    profile = {"coin_platform": {"target": "fakesnow", "outputs": {"fakesnow": output}}}
    (directory / "profiles.yml").write_text(yaml.safe_dump(profile))
    return directory


def test_the_models_build_on_snowflake_sql_full_and_one_day_incremental(built_warehouse, fakesnow_server, tmp_path):
    tables = _slice(built_warehouse.raw)
    _load(fakesnow_server, tables)
    profiles = _profile(tmp_path / "profiles", fakesnow_server)
    day = str(built_warehouse.days()[0])
    # The same vars twice: the first build (no tables yet) ignores the day window, the second one is
    # incremental on it, and dbt's partial parse carries over.
    dbt_vars = ["--vars", json.dumps({"fee_rate": built_warehouse.fee_rate, "min_day": day, "max_day": day})]
    full = run_dbt(["build", *dbt_vars], tmp_path, tmp_path / "dbt", profiles_dir=profiles, target="fakesnow")
    assert full.returncode == 0, full.output[-4000:]
    incremental = run_dbt(
        ["build", "--select", "marts", *dbt_vars], tmp_path, tmp_path / "dbt", profiles_dir=profiles, target="fakesnow"
    )
    assert incremental.returncode == 0, incremental.output[-4000:]
    assert all(status in ("success", "pass") for status in full.statuses().values())
    assert sum(1 for uid in full.statuses() if uid.startswith("test.")) > 50

    connection = snowflake.connector.connect(
        user="fake", password="snow", account="fakesnow", **fakesnow_server.connection_args()
    )
    with connection, connection.cursor() as cursor:
        cursor.execute(f"select candidate_id, label, forward_return from {DATABASE}.main.mart_training_set")
        on_snowflake = pl.DataFrame(cursor.fetchall(), schema=["candidate_id", "label", "forward_return"], orient="row")
    on_duckdb = built_warehouse.query("select candidate_id, label, forward_return from main.mart_training_set").filter(
        pl.col("candidate_id").is_in(on_snowflake["candidate_id"].implode())
    )
    assert on_snowflake.height == on_duckdb.height > 0
    joined = on_snowflake.join(on_duckdb, on="candidate_id", suffix="_duckdb")
    assert (joined["label"] == joined["label_duckdb"]).all()
    assert ((joined["forward_return"] - joined["forward_return_duckdb"]).abs() < 1e-12).all()
