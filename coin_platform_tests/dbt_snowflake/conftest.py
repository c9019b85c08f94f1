"""One dbt build for the module's tests: the platform's own data in the raw tables, every model and test built."""

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl
import pytest

from coin_platform_tests.dbt_snowflake.raw_warehouse import (
    TEST_DAYS,
    TEST_START,
    TEST_SYMBOLS,
    DbtRun,
    RawData,
    platform_raw_data,
    platform_settings,
    run_dbt,
    warehouse_file,
    write_raw_tables,
)


@dataclass(frozen=True)
class BuiltWarehouse:
    coin_home: Path
    work_dir: Path  # dbt's target and logs: later runs reuse its partial parse
    raw: RawData
    build: DbtRun
    fee_rate: float

    def query(self, sql: str) -> pl.DataFrame:
        with duckdb.connect(str(warehouse_file(self.coin_home)), read_only=True) as connection:
            return pl.from_arrow(connection.sql(sql).to_arrow_table())

    def days(self) -> list[dt.date]:
        return [TEST_START + dt.timedelta(days=n) for n in range(TEST_DAYS)]


@pytest.fixture(scope="session")
def built_warehouse(tmp_path_factory: pytest.TempPathFactory) -> BuiltWarehouse:
    coin_home = tmp_path_factory.mktemp("dbt_home")
    settings = platform_settings(coin_home)
    raw = platform_raw_data(settings, TEST_SYMBOLS, TEST_START, TEST_DAYS)
    write_raw_tables(warehouse_file(coin_home), raw)
    fee_rate = settings.config.trading.fee_rate
    work_dir = tmp_path_factory.mktemp("dbt_work")
    build = run_dbt(["build", "--vars", json.dumps({"fee_rate": fee_rate})], coin_home, work_dir)
    assert build.returncode == 0, build.output[-4000:]
    return BuiltWarehouse(coin_home, work_dir, raw, build, fee_rate)
