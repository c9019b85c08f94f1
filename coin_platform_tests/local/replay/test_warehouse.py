"""The replay warehouse's candles and raw-table load: the ohlcv table's columns, a load a day partition at a
time that refuses what does not fit, and bad windows refused by name."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from coin_platform.local.replay.warehouse import RawData, replay_candles, write_raw_tables
from coin_platform.storage.warehouse import DuckDBWarehouse, WarehouseSchemaError
from coin_platform.storage.warehouse_tables import RAW_TABLES

START = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)


def test_replay_candles_are_the_ohlcv_tables_rows_for_every_closed_candle_of_the_days():
    candles = replay_candles("BTCUSDT", "15m", start=START, days=2)
    assert candles.schema == pl.Schema(RAW_TABLES["ohlcv_15m"].columns)
    assert candles.height == 2 * 96
    assert candles["open_time"].min() == START
    assert candles["open_time"].max() == START + dt.timedelta(days=2, minutes=-15)
    assert candles["symbol"].unique().to_list() == ["BTCUSDT"]


@pytest.mark.parametrize(
    ("start", "days", "problem"),
    [(START.replace(tzinfo=None), 1, "has no time zone"), (START, 0, "days must be at least 1")],
)
def test_a_window_without_a_time_zone_or_days_is_refused(start, days, problem):
    with pytest.raises(ValueError, match=problem):
        replay_candles("BTCUSDT", "1h", start=start, days=days)


def test_raw_tables_load_by_day_and_every_table_exists(tmp_path):
    candles = replay_candles("ETHUSDT", "1h", start=START, days=3)
    path = tmp_path / "warehouse.duckdb"
    write_raw_tables(path, RawData({"ohlcv_1h": candles}))
    loaded = DuckDBWarehouse(path).query("select * from raw.ohlcv_1h order by open_time")
    assert loaded.equals(candles)
    empty = DuckDBWarehouse(path).query("select count(*) as n from raw.fills")
    assert empty["n"].to_list() == [0]


def test_a_frame_that_does_not_fit_its_raw_table_is_refused(tmp_path):
    candles = replay_candles("ETHUSDT", "1h", start=START, days=1)
    with pytest.raises(WarehouseSchemaError, match="columns missing \\['symbol'\\]"):
        write_raw_tables(tmp_path / "warehouse.duckdb", RawData({"ohlcv_1h": candles.drop("symbol")}))
    with pytest.raises(WarehouseSchemaError, match="'ohlcv_1s' is not a raw warehouse table"):
        write_raw_tables(tmp_path / "warehouse.duckdb", RawData({"ohlcv_1s": candles}))
