"""Funding rates: the one writer and reader, with the real funding files in shared/data as oracles."""

import datetime as dt

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from coin_platform.market.funding import FUNDING_SCHEMA
from coin_platform.market.klines import SchemaMismatchError
from coin_platform.storage.funding import FundingFrameError, read_funding, write_funding_day
from coin_platform.storage.layout import day_start, funding_key
from coin_platform.storage.object_store import ObjectStore
from coin_platform_tests.market.test_funding import freqtrade_funding, lean_funding

DAY = dt.date(2024, 3, 10)


@pytest.fixture
def store(tmp_path):
    return ObjectStore.local(tmp_path / "bucket")


def funding_day(symbol: str, day: dt.date, rates: list[float], every_hours: int = 8) -> pl.DataFrame:
    start = day_start(day)
    return pl.DataFrame(
        {
            "symbol": [symbol] * len(rates),
            "funding_time": [start + dt.timedelta(hours=every_hours * i, milliseconds=3) for i in range(len(rates))],
            "funding_rate": rates,
            "mark_price": [100.0 + i for i in range(len(rates))],
        },
        schema=FUNDING_SCHEMA,
    )


def _window(first: dt.date, days: int) -> tuple[dt.datetime, dt.datetime]:
    return day_start(first), day_start(first + dt.timedelta(days=days))


def _write_by_day(store: ObjectStore, frame: pl.DataFrame) -> None:
    by_day = frame.with_columns(day=pl.col("funding_time").dt.date())
    for (symbol, day), rows in by_day.partition_by("symbol", "day", as_dict=True).items():
        write_funding_day(store, symbol, day, rows.drop("day"))


def test_a_day_round_trips_sorted_and_a_missing_day_is_a_gap(store):
    day = funding_day("BTCUSDT", DAY, [0.0001, -0.0002, 0.0003])
    key = write_funding_day(store, "BTCUSDT", DAY, day.reverse())
    assert key == funding_key("BTCUSDT", DAY) == "funding/BTCUSDT/2024-03-10.parquet"
    assert_frame_equal(read_funding(store, ["BTCUSDT"], *_window(DAY - dt.timedelta(days=2), 4)), day)
    assert read_funding(store, ["ETHUSDT"], *_window(DAY, 1)).schema == pl.Schema(FUNDING_SCHEMA)
    after_first = day_start(DAY) + dt.timedelta(hours=1)
    assert read_funding(store, ["BTCUSDT"], after_first, day_start(DAY) + dt.timedelta(hours=16)).height == 1


def test_symbols_are_merged_by_funding_time_then_symbol(store):
    write_funding_day(store, "ETHUSDT", DAY, funding_day("ETHUSDT", DAY, [0.0001, 0.0001]))
    write_funding_day(store, "BTCUSDT", DAY, funding_day("BTCUSDT", DAY, [0.0002, 0.0002]))
    both = read_funding(store, ["ETHUSDT", "BTCUSDT"], *_window(DAY, 1))
    assert both.select("symbol", "funding_rate").rows() == [
        ("BTCUSDT", 0.0002),
        ("ETHUSDT", 0.0001),
        ("BTCUSDT", 0.0002),
        ("ETHUSDT", 0.0001),
    ]


def test_a_rerun_gives_the_same_bytes_and_replaces_the_day(store):
    day = funding_day("BTCUSDT", DAY, [0.0001, 0.0002, 0.0003])
    key = write_funding_day(store, "BTCUSDT", DAY, day)
    first = store.read_bytes(key)
    write_funding_day(store, "BTCUSDT", DAY, day)
    assert store.read_bytes(key) == first
    write_funding_day(store, "BTCUSDT", DAY, day.head(1))
    assert read_funding(store, ["BTCUSDT"], *_window(DAY, 1)).height == 1
    write_funding_day(store, "BTCUSDT", DAY, day.head(0))  # fetched, no funding time: an empty object
    assert store.exists(key) and read_funding(store, ["BTCUSDT"], *_window(DAY, 1)).is_empty()


@pytest.mark.parametrize(
    ("spoil", "problem"),
    [
        (lambda f: f.with_columns(symbol=pl.lit("ETHUSDT")), "symbol is not BTCUSDT"),
        (lambda f: f.with_columns(pl.col("funding_time") + dt.timedelta(days=1)), "outside 2024-03-10"),
        (lambda f: pl.concat([f, f.tail(1)]), "funding_time is duplicated"),
        (lambda f: f.with_columns(funding_time=pl.lit(None, dtype=f.schema["funding_time"])), "missing"),
    ],
)
def test_bad_rows_are_refused_by_name_and_nothing_is_written(store, spoil, problem):
    good = funding_day("BTCUSDT", DAY, [0.0001, 0.0002, 0.0003])
    key = write_funding_day(store, "BTCUSDT", DAY, good)
    before = store.read_bytes(key)
    with pytest.raises(FundingFrameError, match=problem):
        write_funding_day(store, "BTCUSDT", DAY, spoil(good))
    assert store.read_bytes(key) == before


def test_a_frame_or_object_of_another_schema_is_named(store):
    day = funding_day("BTCUSDT", DAY, [0.0001])
    with pytest.raises(SchemaMismatchError, match="lacks columns \\['mark_price'\\]"):
        write_funding_day(store, "BTCUSDT", DAY, day.drop("mark_price"))
    with pytest.raises(SchemaMismatchError, match="unexpected types for \\['funding_rate'\\]"):
        write_funding_day(store, "BTCUSDT", DAY, day.with_columns(pl.col("funding_rate").cast(pl.Float32)))
    assert not store.exists(funding_key("BTCUSDT", DAY))
    store.write_parquet(funding_key("BTCUSDT", DAY), day.drop("symbol"))
    with pytest.raises(SchemaMismatchError, match=funding_key("BTCUSDT", DAY)):
        read_funding(store, ["BTCUSDT"], *_window(DAY, 1))


def test_bad_read_arguments_are_named(store):
    with pytest.raises(ValueError, match="start .* has no timezone"):
        read_funding(store, ["BTCUSDT"], dt.datetime(2024, 3, 10), dt.datetime(2024, 3, 11, tzinfo=dt.UTC))
    with pytest.raises(ValueError, match="invalid symbol 'btc/usdt'"):
        read_funding(store, ["btc/usdt"], *_window(DAY, 1))
    assert read_funding(store, ["BTCUSDT"], day_start(DAY), day_start(DAY)).is_empty()


def test_years_are_found_by_listing_with_the_same_rows(store):
    days = [dt.date(2021, 6, 1), dt.date(2022, 12, 31), dt.date(2023, 1, 1), dt.date(2024, 2, 29)]
    for day in days:
        write_funding_day(store, "BTCUSDT", day, funding_day("BTCUSDT", day, [0.0001, 0.0002, 0.0003]))
    wide = read_funding(store, ["BTCUSDT"], *_window(dt.date(2021, 1, 1), 3 * 366 + 60))
    by_year = pl.concat(
        read_funding(store, ["BTCUSDT"], day_start(dt.date(year, 1, 1)), day_start(dt.date(year + 1, 1, 1)))
        for year in (2021, 2022, 2023, 2024)
    )
    assert wide.height == 12 and wide.equals(by_year)
    assert wide["funding_time"].dt.date().unique().sort().to_list() == days


@pytest.mark.parametrize("oracle", [freqtrade_funding, lean_funding], ids=["freqtrade XRPUSDT", "lean ADAUSDT"])
def test_the_real_funding_files_pass_through_the_writer_and_reader_unchanged(store, oracle):
    frame = oracle()
    _write_by_day(store, frame)
    first = frame["funding_time"].min().date()
    days = (frame["funding_time"].max().date() - first).days + 1
    back = read_funding(store, [frame["symbol"][0]], *_window(first, days))
    assert_frame_equal(back, frame)
