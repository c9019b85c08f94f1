"""The loader's contract, against data the pipeline itself wrote (replay server → ingest → compact).

The module's store holds 2023-12-30 .. 2024-01-03 (UTC) of BTCUSDT 1m and 1h
and ETHUSDT 1h. 2023 is compacted whole, 2024 through 2024-01-01, so the
archives cross a year boundary and 2024-01-02 .. 01-03 is an hourly tail.
"""

import datetime as dt
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import event, given
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from coin_platform.loader import (
    COLUMNS,
    KST,
    LoaderError,
    PartialResultWarning,
    load_ohlcv,
    load_ohlcv_data,
)
from coin_platform.local.replay import ReplayServer
from coin_platform.market.client import BinanceFuturesClient
from coin_platform.market.klines import OHLCV_SCHEMA
from coin_platform.pipeline.compaction import compact_year
from coin_platform.pipeline.ingest import build_ohlcv_day, ingest_raw_klines
from coin_platform.settings import load_settings
from coin_platform.storage.archive import read_compacted_through, write_day_version
from coin_platform.storage.layout import history_key, ohlcv_day_keys, ohlcv_key, ohlcv_keys_between
from coin_platform.storage.object_store import ObjectStore
from coin_platform.storage.ohlcv import read_ohlcv_day

FIRST_DAY, LAST_DAY = dt.date(2023, 12, 30), dt.date(2024, 1, 3)
COMPACTED = {2023: dt.date(2023, 12, 31), 2024: dt.date(2024, 1, 1)}
STORED = {"BTCUSDT": ("1m", "1h"), "ETHUSDT": ("1h",)}
# A day whose ETH 1m candles are kept apart, to check 1D bars built from ETH's 1h.
ETH_MINUTES_DAY = dt.date(2024, 1, 2)
PRICES = ["open", "high", "low", "close"]


@dataclass(frozen=True)
class PipelineData:
    root: Path
    store: ObjectStore
    eth_minutes: pl.DataFrame  # ETH 1m of ETH_MINUTES_DAY, never in `root`


def utc(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=dt.UTC)


def ingest(client: BinanceFuturesClient, store: ObjectStore, interval: str, symbol: str,
           days: list[dt.date]) -> None:
    now = dt.datetime.now(dt.UTC)
    ingest_raw_klines(client, store, interval, symbol, days, only_missing=False)
    for day in days:
        build_ohlcv_day(store, interval, symbol, day, now=now, drop_zero_volume=False,
                        only_missing=False)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> PipelineData:
    root = tmp_path_factory.mktemp("loader") / "root"
    store = ObjectStore.local(root)
    minutes = ObjectStore.local(root.parent / "eth-minutes")
    days = [FIRST_DAY + dt.timedelta(days=n) for n in range((LAST_DAY - FIRST_DAY).days + 1)]
    with ReplayServer(weight_limit=10**9) as server:
        client = BinanceFuturesClient(server.url)
        for symbol, intervals in STORED.items():
            for interval in intervals:
                ingest(client, store, interval, symbol, days)
                for year, through in COMPACTED.items():
                    compact_year(store, interval, symbol, year, through=through)
        ingest(client, minutes, "1m", "ETHUSDT", [ETH_MINUTES_DAY])
    return PipelineData(root, store, read_ohlcv_day(minutes, "1m", "ETHUSDT", ETH_MINUTES_DAY))


@pytest.fixture
def root_copy(pipeline: PipelineData, tmp_path: Path) -> Path:
    """A copy of the pipeline's store that a test may change."""
    return Path(shutil.copytree(pipeline.root, tmp_path / "root"))


def hourly_rows(store: ObjectStore, interval: str, symbol: str) -> pl.DataFrame:
    """Every stored hourly object of the module's days, read directly, as loader rows."""
    keys = ohlcv_keys_between(interval, symbol, FIRST_DAY, LAST_DAY)
    frames = store.read_parquet_many([k for k, found in zip(keys, store.exists_many(keys), strict=True) if found])
    return pl.concat(frames).select(
        pl.col("open_time").alias("timestamp"), pl.lit(symbol).alias("symbol"),
        pl.lit(interval.upper()).alias("timeframe"), "open", "high", "low", "close", "volume",
    )


def aggregate(frame: pl.DataFrame, every: str) -> pl.DataFrame:
    """OHLCV bars written out by hand, to check the loader's resampling against."""
    return (
        frame.sort("timestamp")
        .group_by(pl.col("timestamp").dt.truncate(every), "symbol", maintain_order=True)
        .agg(pl.col("open").first(), pl.col("high").max(), pl.col("low").min(),
             pl.col("close").last(), pl.col("volume").sum())
    )


def assert_bars_equal(loaded: pl.DataFrame, expected: pl.DataFrame) -> None:
    """Prices exactly; volume up to the order of a float sum."""
    loaded = loaded.select("timestamp", "symbol", *PRICES, "volume")
    expected = expected.select("timestamp", "symbol", *PRICES, "volume")
    assert_frame_equal(loaded.drop("volume"), expected.drop("volume"), check_exact=True)
    assert_frame_equal(loaded.select("volume"), expected.select("volume"), rel_tol=1e-9)


# --- shape -------------------------------------------------------------------


def test_the_eight_columns_in_order_with_utc_millisecond_timestamps(pipeline):
    frame = load_ohlcv(["BTCUSDT", "ETHUSDT"], "2024-01-01", "2024-01-02", "1h", pipeline.root)
    assert frame.columns == list(COLUMNS)
    assert frame.schema == pl.Schema({
        "timestamp": pl.Datetime("ms", "UTC"), "symbol": pl.String(), "timeframe": pl.String(),
        **{column: pl.Float64() for column in [*PRICES, "volume"]},
    })
    assert set(frame["timeframe"]) == {"1H"}

    data = load_ohlcv_data(["BTCUSDT", "ETHUSDT"], "2024-01-01", "2024-01-02", "1h", pipeline.root)
    assert isinstance(data, pd.DataFrame)
    assert list(data.columns) == list(COLUMNS)
    assert str(data["timestamp"].dtype) == "datetime64[ms, UTC]"
    assert all(str(data[column].dtype) == "float64" for column in [*PRICES, "volume"])
    assert data["timestamp"].iloc[0] == pd.Timestamp("2023-12-31T15:00", tz="UTC")
    assert_frame_equal(pl.from_pandas(data), frame)


def test_rows_are_sorted_by_timestamp_then_symbol_whatever_the_request_order(pipeline):
    frame = load_ohlcv(["ETHUSDT", "BTCUSDT"], "2024-01-01", "2024-01-01", "1h", pipeline.root)
    assert frame.height == 48
    assert frame.select("timestamp", "symbol").rows() == sorted(frame.select("timestamp", "symbol").rows())
    assert frame["symbol"].head(2).to_list() == ["BTCUSDT", "ETHUSDT"]


# --- dates -------------------------------------------------------------------


def test_a_date_is_a_whole_kst_day_for_start_and_end(pipeline):
    frame = load_ohlcv("BTCUSDT", "2024-01-01", "2024-01-01", "1h", pipeline.root)
    assert frame["timestamp"].to_list() == [utc(2023, 12, 31, 15) + dt.timedelta(hours=h) for h in range(24)]
    as_dates = load_ohlcv("BTCUSDT", dt.date(2024, 1, 1), dt.date(2024, 1, 1), "1h", pipeline.root)
    assert_frame_equal(as_dates, frame)


def test_explicit_offsets_are_honoured_in_every_accepted_type(pipeline):
    expected = load_ohlcv("BTCUSDT", "2024-01-01T00:00:00+00:00", "2024-01-01T05:00:00+00:00",
                          "1h", pipeline.root)
    assert expected["timestamp"].to_list() == [utc(2024, 1, 1, h) for h in range(6)]
    for start, end in [
        ("2024-01-01T00:00:00Z", "2024-01-01T14:00:00+09:00"),
        (utc(2024, 1, 1), utc(2024, 1, 1, 5)),
        (pd.Timestamp("2024-01-01 09:00", tz="Asia/Seoul"), pd.Timestamp("2024-01-01 05:00", tz="UTC")),
    ]:
        assert_frame_equal(load_ohlcv("BTCUSDT", start, end, "1h", pipeline.root), expected)


def test_an_end_with_a_time_includes_the_bar_opening_at_that_instant(pipeline):
    # Naive date-times are KST: 05:00 KST is 2023-12-31T20:00Z.
    for end in ("2024-01-01T05:00:00", "2024-01-01 05:00", dt.datetime(2024, 1, 1, 5),
                pd.Timestamp("2024-01-01 05:00")):
        frame = load_ohlcv("BTCUSDT", "2024-01-01", end, "1h", pipeline.root)
        assert frame["timestamp"].to_list() == [utc(2023, 12, 31, h) for h in range(15, 21)], end
    minute = load_ohlcv("BTCUSDT", utc(2024, 1, 1, 5), utc(2024, 1, 1, 5, 59, 30), "1m", pipeline.root)
    assert minute.height == 60  # 05:00 .. 05:59; 05:59 opened before 05:59:30


def test_daily_bars_are_utc_days_selected_by_the_kst_range(pipeline):
    frame = load_ohlcv("ETHUSDT", "2024-01-01", "2024-01-02", "1D", pipeline.root)
    # [2023-12-31T15:00Z, 2024-01-02T15:00Z) holds the openings of UTC Jan 1 and Jan 2.
    assert frame["timestamp"].to_list() == [utc(2024, 1, 1), utc(2024, 1, 2)]
    # Jan 2's bar holds the whole UTC day, beyond the query's end.
    eth_1h = hourly_rows(pipeline.store, "1h", "ETHUSDT")
    assert_bars_equal(frame, aggregate(eth_1h.filter(pl.col("timestamp") >= utc(2024, 1, 1),
                                                     pl.col("timestamp") < utc(2024, 1, 3)), "1d"))


# --- names -------------------------------------------------------------------


def test_symbols_and_timeframes_in_any_case(pipeline):
    expected = load_ohlcv(["BTCUSDT"], "2024-01-01", "2024-01-01", "1H", pipeline.root)
    for symbols, timeframe in ((["btcusdt"], "1h"), ("BtcUsdt", " 1H "), (["BTCUSDT", "btcusdt"], "1h")):
        assert_frame_equal(load_ohlcv(symbols, "2024-01-01", "2024-01-01", timeframe, pipeline.root),
                           expected)
    assert load_ohlcv("btcusdt", "2024-01-01", "2024-01-01", "15m", pipeline.root)["timeframe"][0] == "15M"


# --- resampling --------------------------------------------------------------


def test_daily_bars_from_1h_equal_the_aggregate_of_the_days_1m_candles(pipeline):
    day = utc(2024, 1, 2)
    frame = load_ohlcv("ethusdt", day, day, "1d", pipeline.root)  # ETH stores only 1h
    minutes = pipeline.eth_minutes.rename({"open_time": "timestamp"}).with_columns(symbol=pl.lit("ETHUSDT"))
    assert minutes.height == 1440
    assert frame["timeframe"].to_list() == ["1D"]
    assert_bars_equal(frame, aggregate(minutes, "1d"))


def test_5m_bars_from_1m_and_4h_bars_from_1h(pipeline):
    start, end = "2023-12-30T00:00Z", "2024-01-03T23:59Z"
    five = load_ohlcv("BTCUSDT", start, end, "5M", pipeline.root)
    assert five.height == 5 * 288
    assert_bars_equal(five, aggregate(hourly_rows(pipeline.store, "1m", "BTCUSDT"), "5m"))
    four = load_ohlcv("ETHUSDT", start, end, "4h", pipeline.root)
    assert four.height == 5 * 6
    assert four["timestamp"][0] == utc(2023, 12, 30)
    assert_bars_equal(four, aggregate(hourly_rows(pipeline.store, "1h", "ETHUSDT"), "4h"))


def test_a_stored_timeframe_is_returned_as_is_and_others_come_from_the_finest(root_copy):
    store = ObjectStore.local(root_copy)
    key = ohlcv_day_keys("1h", "BTCUSDT", dt.date(2024, 1, 2))[7]  # a tail object
    store.write_parquet(key, store.read_parquet(key).with_columns(close=pl.lit(12345.0)))
    hour = load_ohlcv("BTCUSDT", utc(2024, 1, 2, 7), utc(2024, 1, 2, 7), "1h", root_copy)
    assert hour["close"].to_list() == [12345.0]
    # 1D divides by 1m and 1h alike; the finest, 1m, does not see the edit.
    day = load_ohlcv("BTCUSDT", utc(2024, 1, 2), utc(2024, 1, 2), "1d", root_copy)
    minutes = hourly_rows(store, "1m", "BTCUSDT").filter(pl.col("timestamp").dt.date() == dt.date(2024, 1, 2))
    assert_bars_equal(day, aggregate(minutes, "1d"))
    assert day["close"][0] != 12345.0


def test_a_timeframe_no_stored_interval_divides_has_no_data(pipeline):
    with pytest.raises(LoaderError) as error:
        load_ohlcv("ETHUSDT", "2024-01-01", "2024-01-02", "30m", pipeline.root)  # 1h does not divide 30m
    assert error.value.status_code == 404


# --- archive + tail ----------------------------------------------------------


def test_archives_and_the_hourly_tail_stitch_without_gap_or_duplicate(pipeline, root_copy):
    store = pipeline.store
    assert read_compacted_through(store, history_key("BTCUSDT", "1m", 2024)) == dt.date(2024, 1, 1)
    loaded = load_ohlcv("BTCUSDT", "2023-12-30T00:00Z", "2024-01-03T23:59Z", "1m", pipeline.root)
    direct = hourly_rows(store, "1m", "BTCUSDT")
    assert direct.height == 5 * 1440
    assert_frame_equal(loaded, direct, check_exact=True)
    steps = loaded["timestamp"].diff().drop_nulls().unique().to_list()
    assert steps == [dt.timedelta(minutes=1)]
    # Without the hourly objects the archives cover, the rows come from the archives alone.
    copy = ObjectStore.local(root_copy)
    covered = ohlcv_keys_between("1m", "BTCUSDT", FIRST_DAY, COMPACTED[2024])
    copy.delete_many(covered)
    assert_frame_equal(load_ohlcv("BTCUSDT", "2023-12-30T00:00Z", "2024-01-03T23:59Z", "1m", root_copy),
                       loaded, check_exact=True)
    boundary = load_ohlcv("BTCUSDT", utc(2024, 1, 1, 23, 58), utc(2024, 1, 2, 0, 1), "1m", root_copy)
    assert boundary["timestamp"].to_list() == [utc(2024, 1, 1, 23, 58), utc(2024, 1, 1, 23, 59),
                                               utc(2024, 1, 2, 0, 0), utc(2024, 1, 2, 0, 1)]


def test_a_year_without_an_archive_is_read_from_its_hourly_objects(pipeline, root_copy):
    (root_copy / history_key("ETHUSDT", "1h", 2024)).unlink()
    loaded = load_ohlcv("ETHUSDT", "2023-12-30T00:00Z", "2024-01-03T23:00Z", "1h", root_copy)
    assert_frame_equal(loaded, hourly_rows(pipeline.store, "1h", "ETHUSDT"), check_exact=True)


# --- a coin_hts tree -----------------------------------------------------------


def write_table(path: Path, table: pa.Table) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def hts_hours(start: dt.datetime, hours: int) -> pd.DataFrame:
    """coin_hts-style hourly bars from `start`: naive ns timestamps in KST, no symbol or timeframe column."""
    naive_kst = start.astimezone(KST).replace(tzinfo=None)
    timestamps = pd.date_range(naive_kst, periods=hours, freq="h", unit="ns")
    values = [float(n) for n in range(hours)]
    return pd.DataFrame({"timestamp": timestamps, "open": values, "high": [v + 2 for v in values],
                         "low": [v - 1 for v in values], "close": [v + 1 for v in values],
                         "volume": [10.0] * hours})


def test_a_plain_coin_hts_tree_with_naive_kst_timestamps_and_no_symbol_column(tmp_path):
    hours = hts_hours(utc(2024, 3, 1), 48)
    assert str(hours["timestamp"].dtype) == "datetime64[ns]"
    write_table(tmp_path / "BTCUSDT" / "1H" / "2024.parquet", pa.Table.from_pandas(hours))
    daily = pa.table({
        "timestamp": pa.array([utc(2024, 3, 1), utc(2024, 3, 2)], pa.timestamp("us", "UTC")),
        "symbol": ["ETHUSDT"] * 2, "timeframe": ["1D"] * 2,
        **{column: pa.array([1.0, 2.0]) for column in [*PRICES, "volume"]},
    })
    write_table(tmp_path / "ETHUSDT" / "1D" / "2024.parquet", daily)

    frame = load_ohlcv("btcusdt", "2024-03-01T00:00Z", "2024-03-02T23:00Z", "1h", str(tmp_path))
    assert frame.schema["timestamp"] == pl.Datetime("ms", "UTC")
    assert frame["timestamp"].to_list() == [utc(2024, 3, 1) + dt.timedelta(hours=h) for h in range(48)]
    assert set(frame["symbol"]) == {"BTCUSDT"} and set(frame["timeframe"]) == {"1H"}
    assert frame["close"].to_list() == hours["close"].to_list()

    four = load_ohlcv("BTCUSDT", "2024-03-01T00:00Z", "2024-03-01T23:59Z", "4h", tmp_path)
    assert four.select("open", "high", "low", "close", "volume").row(0) == (0.0, 5.0, -1.0, 4.0, 40.0)
    both = load_ohlcv(["BTCUSDT", "ETHUSDT"], "2024-03-01T00:00Z", "2024-03-02T00:00Z", "1d", tmp_path)
    assert both.select("timestamp", "symbol", "close").rows() == [
        (utc(2024, 3, 1), "BTCUSDT", 24.0), (utc(2024, 3, 1), "ETHUSDT", 1.0),
        (utc(2024, 3, 2), "BTCUSDT", 48.0), (utc(2024, 3, 2), "ETHUSDT", 2.0),
    ]


HTS_YEARS = (2022, 2023, 2024)


def write_hts_daily_tree(root: Path, symbol: str, scale: float) -> pd.DataFrame:
    """A coin_hts tree as coin_hts writes it: `{SYMBOL}/1D/{year}.parquet`, one daily bar per KST
    day at naive KST midnight, no symbol or timeframe column. Returns every bar written."""
    years = []
    for year in HTS_YEARS:
        days = pd.date_range(f"{year}-01-01", f"{year}-12-31", freq="D", unit="ns")
        close = [scale * (year * 1000 + n) for n in range(len(days))]
        bars = pd.DataFrame({"timestamp": days, "open": close, "high": [c + 2 for c in close],
                             "low": [c - 1 for c in close], "close": close, "volume": [7.0] * len(days)})
        write_table(root / symbol / "1D" / f"{year}.parquet", pa.Table.from_pandas(bars, preserve_index=False))
        years.append(bars)
    return pd.concat(years, ignore_index=True)


def kst_midnights(first: dt.date, days: int) -> list[dt.datetime]:
    start = dt.datetime(first.year, first.month, first.day, tzinfo=KST)
    return [(start + dt.timedelta(days=n)).astimezone(dt.UTC) for n in range(days)]


def test_a_coin_hts_tree_of_kst_daily_bars_answers_in_its_own_symbols_of_any_case(tmp_path):
    btc = write_hts_daily_tree(tmp_path, "BTC_KRW", 1.0)
    write_hts_daily_tree(tmp_path, "ETH_USDT", 0.01)
    data = load_ohlcv_data(["BTC_KRW"], "2024-01-01", "2024-01-10", timeframe="1d", data_root=tmp_path)
    assert list(data.columns) == list(COLUMNS) and str(data["timestamp"].dtype) == "datetime64[ms, UTC]"
    # Each KST day's bar, opening at KST midnight (15:00 UTC the day before).
    assert list(data["timestamp"]) == kst_midnights(dt.date(2024, 1, 1), 10)
    assert set(data["symbol"]) == {"BTC_KRW"} and set(data["timeframe"]) == {"1D"}
    january = btc[(btc["timestamp"] >= "2024-01-01") & (btc["timestamp"] <= "2024-01-10")]
    assert data[[*PRICES, "volume"]].to_numpy().tolist() == january[[*PRICES, "volume"]].to_numpy().tolist()

    lower = load_ohlcv(["btc_krw", "Eth_Usdt"], "2022-12-30", "2023-01-02", "1D", str(tmp_path))
    assert lower.select("timestamp", "symbol").rows() == [
        (moment, symbol) for moment in kst_midnights(dt.date(2022, 12, 30), 4) for symbol in ("BTC_KRW", "ETH_USDT")
    ]
    everything = load_ohlcv("BTC_KRW", "2022-01-01", "2024-12-31", "1d", tmp_path)  # several files
    assert everything.height == len(btc) == 365 + 365 + 366
    assert everything["close"].to_list() == btc["close"].to_list()
    assert everything["timestamp"].to_list() == kst_midnights(dt.date(2022, 1, 1), len(btc))
    # A KST instant selects by open time: 2024-03-05 00:00 KST opens the bar of that day.
    instant = load_ohlcv("BTC_KRW", "2024-03-05T00:00", "2024-03-05T00:00", "1d", tmp_path)
    assert instant["timestamp"].to_list() == kst_midnights(dt.date(2024, 3, 5), 1)

    with pytest.raises(LoaderError) as error:
        load_ohlcv("BTC_KRW", "2021-01-01", "2021-12-31", "1d", tmp_path)
    assert error.value.status_code == 404 and "BTC_KRW" in str(error.value)
    for bad in ("BTC-KRW", "BTC__KRW", "_KRW", "BTC_", "BTC_KRW_X", "../BTC_KRW"):
        with pytest.raises(LoaderError, match="symbols") as error:
            load_ohlcv(bad, "2024-01-01", "2024-01-10", "1d", tmp_path)
        assert error.value.status_code == 422, bad


# --- errors ------------------------------------------------------------------


def test_an_archive_without_a_required_column_is_a_400_naming_file_and_column(tmp_path):
    write_table(tmp_path / "history" / "BTCUSDT" / "1H" / "2024.parquet",
                pa.Table.from_pandas(hts_hours(utc(2024, 3, 1), 24).drop(columns="volume")))
    with pytest.raises(LoaderError) as error:
        load_ohlcv("BTCUSDT", "2024-03-01", "2024-03-01", "1h", tmp_path)
    assert error.value.status_code == 400
    assert "history/BTCUSDT/1H/2024.parquet" in str(error.value)
    assert "'volume'" in str(error.value)


def test_an_hourly_object_without_a_required_column_is_a_400(root_copy):
    store = ObjectStore.local(root_copy)
    key = ohlcv_day_keys("1h", "ETHUSDT", dt.date(2024, 1, 3))[0]
    store.write_parquet(key, store.read_parquet(key).drop("close"))
    with pytest.raises(LoaderError) as error:
        load_ohlcv("ETHUSDT", "2024-01-03T00:00Z", "2024-01-03T00:00Z", "1h", root_copy)
    assert error.value.status_code == 400
    assert key in str(error.value) and "'close'" in str(error.value)


def test_no_data_for_any_symbol_is_a_404_naming_what_was_asked(pipeline, tmp_path):
    with pytest.raises(LoaderError) as error:
        load_ohlcv(["XRPUSDT", "dogeusdt"], "2024-01-01", "2024-01-02", "1h", pipeline.root)
    message = str(error.value)
    assert error.value.status_code == 404
    assert all(part in message for part in ("XRPUSDT", "DOGEUSDT", "1H", "2023-12-31T15:00:00Z",
                                            "2024-01-02T15:00:00Z", str(pipeline.root)))
    with pytest.raises(LoaderError, match="BTCUSDT") as error:
        load_ohlcv("BTCUSDT", "2020-01-01", "2020-01-31", "1h", pipeline.root)
    assert error.value.status_code == 404
    with pytest.raises(LoaderError, match="nowhere") as error:
        load_ohlcv("BTCUSDT", "2024-01-01", "2024-01-01", "1h", tmp_path / "nowhere")
    assert error.value.status_code == 404
    assert not (tmp_path / "nowhere").exists()  # a reader creates nothing


@pytest.mark.parametrize(("arguments", "parameter"), [
    ((["BTCUSDT"], "2024-01-01", "2024-01-02", "7m"), "timeframe"),
    ((["BTCUSDT"], "2024-01-01", "2024-01-02", "1w"), "timeframe"),
    ((["BTCUSDT"], "2024-01-03", "2024-01-02", "1h"), "start_date"),
    ((["BTCUSDT"], "2024-01-01T10:00Z", "2024-01-01T09:00Z", "1h"), "start_date"),
    (([], "2024-01-01", "2024-01-02", "1h"), "symbols"),
    ((["BTC/USDT"], "2024-01-01", "2024-01-02", "1h"), "symbols"),
    ((["BTCUSDT"], "yesterday", "2024-01-02", "1h"), "start_date"),
    ((["BTCUSDT"], "2024-01-01", "2024-13-01", "1h"), "end_date"),
    ((["BTCUSDT"], "2024-01-01", 20240102, "1h"), "end_date"),
])
def test_invalid_parameters_are_a_422_naming_the_parameter(pipeline, arguments, parameter):
    with pytest.raises(LoaderError) as error:
        load_ohlcv(*arguments, data_root=pipeline.root)
    assert error.value.status_code == 422
    assert parameter in str(error.value)


@pytest.mark.parametrize(("start", "end", "parameter"), [
    (pd.NaT, "2024-01-02", "start_date"),
    ("2024-01-01", pd.NaT, "end_date"),
    (float("nan"), "2024-01-02", "start_date"),
    ("2024-01-01", None, "end_date"),
    ("2024-01-01", "+10000-01-01", "end_date"),
])
def test_dates_that_name_no_moment_are_a_422_naming_the_parameter(pipeline, start, end, parameter):
    with pytest.raises(LoaderError) as error:
        load_ohlcv("BTCUSDT", start, end, "1h", pipeline.root)
    assert error.value.status_code == 422
    assert parameter in str(error.value)


def test_a_range_is_clamped_to_the_moments_candles_can_have(pipeline, tmp_path):
    """From the first day of any crypto market through now: the extreme dates answer as the real range."""
    expected = load_ohlcv(["BTCUSDT", "ETHUSDT"], "2023-12-30T00:00Z", "2024-01-03T23:59Z", "1h", pipeline.root)
    for start, end in [
        ("0001-01-01", "9999-12-31"),
        (dt.date.min, dt.date.max),
        (dt.datetime.min, dt.datetime.max),
        (dt.datetime.min.replace(tzinfo=dt.UTC), dt.datetime.max.replace(tzinfo=dt.UTC)),
        (pd.Timestamp.min, pd.Timestamp.max),
        ("0001-01-01T00:00+14:00", "9999-12-31T23:59:59.999999-12:00"),
    ]:
        assert_frame_equal(load_ohlcv(["BTCUSDT", "ETHUSDT"], start, end, "1h", pipeline.root), expected)
    # A symbol without data over fifty years (or all of time) is a plain 404.
    for start, end in (("2000-01-01", "2049-12-31"), ("0001-01-01", "9999-12-31")):
        with pytest.raises(LoaderError, match="XRPUSDT") as error:
            load_ohlcv("XRPUSDT", start, end, "1d", pipeline.root)
        assert error.value.status_code == 404
    with pytest.raises(LoaderError, match="BTCUSDT") as error:  # nothing has opened after now
        load_ohlcv("BTCUSDT", "2100-01-01", "9999-12-31", "1m", pipeline.root)
    assert error.value.status_code == 404


def test_a_missing_symbol_next_to_found_ones_is_a_warning(pipeline):
    with pytest.warns(PartialResultWarning, match="no 1H candles for XRPUSDT .* returning BTCUSDT only"):
        frame = load_ohlcv(["BTCUSDT", "XRPUSDT"], "2024-01-01", "2024-01-01", "1h", pipeline.root)
    assert_frame_equal(frame, load_ohlcv("BTCUSDT", "2024-01-01", "2024-01-01", "1h", pipeline.root))


# --- S3 ----------------------------------------------------------------------


def test_an_s3_data_root_reads_the_same_rows_as_local_disk(pipeline, seaweedfs, s3_bucket, tmp_path):
    remote = ObjectStore.s3(s3_bucket, endpoint_url=seaweedfs.endpoint_url,
                            access_key=seaweedfs.access_key, secret_key=seaweedfs.secret_key,
                            region=seaweedfs.region)
    local = pipeline.store
    for path in pipeline.root.rglob("*.parquet"):
        key = path.relative_to(pipeline.root).as_posix()
        remote.write_bytes(key, local.read_bytes(key))
    settings = load_settings({
        "COIN_HOME": str(tmp_path / ".coin"),
        "S3_ENDPOINT_URL": seaweedfs.endpoint_url,
        "S3_BUCKET": s3_bucket,
        "AWS_REGION": seaweedfs.region,
        "AWS_ACCESS_KEY_ID": seaweedfs.access_key,
        "AWS_SECRET_ACCESS_KEY": seaweedfs.secret_key,
    })
    for symbols, timeframe in ((["BTCUSDT"], "1m"), (["BTCUSDT", "ETHUSDT"], "1d")):
        expected = load_ohlcv(symbols, "2023-12-30", "2024-01-03", timeframe, pipeline.root)
        for data_root in (f"s3://{s3_bucket}", None, remote):
            loaded = load_ohlcv(symbols, "2023-12-30", "2024-01-03", timeframe, data_root,
                                settings=settings)
            assert_frame_equal(loaded, expected, check_exact=True)
    with pytest.raises(LoaderError) as error:
        load_ohlcv("XRPUSDT", "2024-01-01", "2024-01-01", "1h", f"s3://{s3_bucket}", settings=settings)
    assert error.value.status_code == 404 and f"s3://{s3_bucket}" in str(error.value)


# --- any input ---------------------------------------------------------------

PARAMETERS = ("symbols", "start_date", "end_date", "timeframe")
NAMES = st.one_of(
    st.text(max_size=12),
    st.from_regex(r"[A-Za-z0-9_]{1,12}", fullmatch=True),
    st.sampled_from(["BTCUSDT", "btcusdt", "BTC_KRW", "btc_krw", "XRPUSDT", "BTC/USDT", "../BTCUSDT", "", " "]),
)
SYMBOLS = st.one_of(
    NAMES,
    st.lists(st.one_of(NAMES, st.integers(), st.none(), st.binary(max_size=4), st.floats()), max_size=3),
    st.tuples(NAMES, NAMES),
    st.dictionaries(NAMES, st.integers(), max_size=2),
    st.integers(), st.floats(), st.none(), st.binary(max_size=8),
)
PANDAS_RANGE = {"min_value": dt.datetime(1677, 9, 22), "max_value": dt.datetime(2262, 4, 11)}
DATES = st.one_of(
    st.text(max_size=32),
    st.sampled_from(["2024-03-01", "2024-03-02", "0001-01-01", "9999-12-31", "2024-03-01T00:00Z",
                     "2024-03-01T23:00:00+09:00", "2024-W09-5", " 2024-03-02 ", "2024-02-30", "+10000-01-01"]),
    st.dates(), st.dates(min_value=dt.date(2024, 2, 25), max_value=dt.date(2024, 3, 5)),
    st.datetimes(), st.datetimes(timezones=st.timezones()),
    st.datetimes(**PANDAS_RANGE).map(pd.Timestamp),
    st.datetimes(**PANDAS_RANGE, timezones=st.timezones()).map(pd.Timestamp),
    st.just(pd.NaT), st.integers(), st.floats(), st.none(),
)
TIMEFRAMES = st.one_of(
    st.text(max_size=6),
    st.sampled_from(["1m", "1M", "15m", "1h", "1H", "4h", "1d", "1D", "30m", "5m", " 1h ", "1w"]),
    st.integers(), st.none(),
)


@pytest.fixture(scope="module")
def small_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two days of BTCUSDT 1h (the first compacted, the second a tail) and a coin_hts BTC_KRW 1D year."""
    root = tmp_path_factory.mktemp("small") / "root"
    store = ObjectStore.local(root)
    day = dt.date(2024, 3, 1)
    hours = pl.DataFrame({"open_time": [utc(2024, 3, 1) + dt.timedelta(hours=h) for h in range(48)]})
    hours = hours.with_columns(
        **{c: pl.int_range(48) + 100 for c in PRICES},
        **{c: pl.lit(1) for c in OHLCV_SCHEMA if c not in (*PRICES, "open_time")},
    ).cast(OHLCV_SCHEMA).select(list(OHLCV_SCHEMA))
    store.write_parquet_many({ohlcv_key("1h", "BTCUSDT", row["open_time"][0]): row
                              for row in hours.partition_by("open_time")})
    compact_year(store, "1h", "BTCUSDT", 2024, through=day)
    write_day_version(store, "1h", "BTCUSDT", day, read_ohlcv_day(store, "1h", "BTCUSDT", day))
    bars = pd.DataFrame({"timestamp": pd.date_range("2024-01-01", "2024-12-31", freq="D", unit="ns")})
    for column in (*PRICES, "volume"):
        bars[column] = 1.0
    write_table(root / "BTC_KRW" / "1D" / "2024.parquet", pa.Table.from_pandas(bars, preserve_index=False))
    return root


@given(symbols=SYMBOLS, start=DATES, end=DATES, timeframe=TIMEFRAMES)
def test_any_parameters_give_a_frame_or_a_loader_error(small_tree, symbols, start, end, timeframe):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PartialResultWarning)
        try:
            frame = load_ohlcv_data(symbols, start, end, timeframe, small_tree)
        except LoaderError as error:
            event(f"status {error.status_code}")
            assert error.status_code in (400, 404, 422)
            if error.status_code == 422:
                assert any(parameter in str(error) for parameter in PARAMETERS), str(error)
            return
    event("a frame")
    assert list(frame.columns) == list(COLUMNS) and len(frame) > 0
    assert str(frame["timestamp"].dtype) == "datetime64[ms, UTC]"


@given(symbols=st.sampled_from(["BTCUSDT", ["btcusdt", "BTC_KRW"], "btc_krw", ["XRPUSDT", "BTCUSDT"]]),
       start=DATES, end=DATES, timeframe=st.sampled_from(["1m", "1h", "4H", "1d", "1D", "15m"]))
def test_any_dates_for_stored_symbols_give_a_frame_or_a_loader_error(small_tree, symbols, start, end, timeframe):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PartialResultWarning)
        try:
            frame = load_ohlcv(symbols, start, end, timeframe, small_tree)
        except LoaderError as error:
            event(f"status {error.status_code}")
            assert error.status_code in (404, 422)
            if error.status_code == 422:
                assert "start_date" in str(error) or "end_date" in str(error), str(error)
            return
    event("a frame")
    assert frame.columns == list(COLUMNS) and frame.height > 0
    assert frame["timestamp"].is_sorted()
