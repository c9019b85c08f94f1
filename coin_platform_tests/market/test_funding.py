"""Funding rates: strict parsing (against Binance's recorded body), and the rules the asset checks,
with the real funding files in shared/data as oracles."""

import datetime as dt

import polars as pl
import pytest

from coin_platform.core.time import UTC_MS
from coin_platform.market.funding import (
    FUNDING_RATE_CAP,
    FUNDING_SCHEMA,
    MalformedFundingError,
    check_funding_rates,
    check_funding_times,
    funding_grid_hours,
    parse_funding_rates,
)
from coin_platform_tests.shared_data import load_json, shared_file

RECORDED = "binance/api_samples/nautilus_trader/http_futures_market_funding_rate.json"
FREQTRADE = "binance/freqtrade/futures/XRP_USDT_USDT-8h-funding_rate.feather"
LEAN = "binance/lean/cryptofuture/margin_interest/adausdt.csv"
DAY = dt.datetime(2024, 3, 10, tzinfo=dt.UTC)


def freqtrade_funding() -> pl.DataFrame:
    """The freqtrade XRP/USDT file as funding rows: its rate is in `open`, its times ns."""
    frame = pl.read_ipc(shared_file(FREQTRADE))
    return frame.select(
        symbol=pl.lit("XRPUSDT"),
        funding_time=pl.col("date").cast(UTC_MS),
        funding_rate=pl.col("open"),
        mark_price=pl.lit(None, dtype=pl.Float64),
    )


def lean_funding() -> pl.DataFrame:
    """Lean's `YYYYMMDD HH:MM:SS,rate` ADAUSDT file as funding rows."""
    frame = pl.read_csv(
        shared_file(LEAN),
        has_header=False,
        new_columns=["when", "rate"],
        schema_overrides={"when": pl.String, "rate": pl.Float64},
    )
    return frame.select(
        symbol=pl.lit("ADAUSDT"),
        funding_time=pl.col("when").str.to_datetime("%Y%m%d %H:%M:%S", time_zone="UTC").cast(UTC_MS),
        funding_rate=pl.col("rate"),
        mark_price=pl.lit(None, dtype=pl.Float64),
    )


def _at(*offsets: dt.timedelta, rate: float = 0.0001) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "symbol": ["BTCUSDT"] * len(offsets),
            "funding_time": [DAY + offset for offset in offsets],
            "funding_rate": [rate] * len(offsets),
            "mark_price": [60_000.0] * len(offsets),
        },
        schema=FUNDING_SCHEMA,
    )


def test_binances_recorded_body_parses_to_the_schema():
    frame = parse_funding_rates(load_json(RECORDED))
    assert frame.schema == pl.Schema(FUNDING_SCHEMA)
    assert frame.to_dicts() == [
        {
            "symbol": "BTCUSDT",
            "funding_time": dt.datetime(2019, 10, 9, 8, tzinfo=dt.UTC),
            "funding_rate": -0.0375,
            "mark_price": None,
        },
        {
            "symbol": "BTCUSDT",
            "funding_time": dt.datetime(2019, 10, 9, 16, tzinfo=dt.UTC),
            "funding_rate": 0.0001,
            "mark_price": None,
        },
    ]  # the recorded items carry no markPrice: null, as for Binance's ""


def test_a_mark_price_is_a_float_and_an_empty_one_is_null():
    items = [
        {"symbol": "ETHUSDT", "fundingTime": 1_710_028_800_003, "fundingRate": "0.00010000", "markPrice": "3012.5"},
        {"symbol": "ETHUSDT", "fundingTime": 1_710_057_600_001, "fundingRate": "-0.00002500", "markPrice": ""},
    ]
    frame = parse_funding_rates(items)
    assert frame["mark_price"].to_list() == [3012.5, None]
    assert frame["funding_time"].dt.epoch("ms").to_list() == [1_710_028_800_003, 1_710_057_600_001]
    assert parse_funding_rates([]).schema == pl.Schema(FUNDING_SCHEMA)


GOOD = {"symbol": "BTCUSDT", "fundingTime": 1_710_028_800_000, "fundingRate": "0.00010000", "markPrice": "61620.9"}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"fundingRate": None}, "fundingRate"),
        ({"fundingRate": 0.0001}, "fundingRate"),  # a number, where Binance sends a string
        ({"fundingRate": "NaN"}, "fundingRate"),
        ({"fundingRate": "1e-4"}, "fundingRate"),
        ({"fundingRate": "not-a-rate"}, "fundingRate"),
        ({"fundingTime": "1710028800000"}, "fundingTime"),
        ({"fundingTime": True}, "fundingTime"),
        ({"fundingTime": -1}, "fundingTime"),
        ({"symbol": ""}, "symbol"),
        ({"markPrice": "-3"}, "markPrice"),
        ({"markPrice": "inf"}, "markPrice"),
    ],
)
def test_a_malformed_item_names_its_index_and_field(change, field):
    items = [GOOD, {key: value for key, value in {**GOOD, **change}.items() if value is not None}]
    with pytest.raises(MalformedFundingError, match=f"funding item 1 field '{field}'"):
        parse_funding_rates(items)


@pytest.mark.parametrize(
    ("body", "message"), [({"code": -1121}, "JSON array"), ([GOOD, "x"], "item 1 is not an object")]
)
def test_a_body_that_is_not_a_list_of_items_is_refused(body, message):
    with pytest.raises(MalformedFundingError, match=message):
        parse_funding_rates(body)


def test_the_8h_grid_passes_with_binances_millisecond_stamps_and_names_the_interval():
    hours = dt.timedelta(hours=1)
    frame = _at(dt.timedelta(milliseconds=17), 8 * hours + dt.timedelta(milliseconds=7), 16 * hours)
    finding = check_funding_times(frame)
    assert finding.passed and finding.details["funding_interval_hours"] == 8
    assert finding.description == "3 funding times unique, increasing, on the 8 h grid"


def test_another_interval_passes_and_is_reported_and_a_gap_is_counted():
    four_hourly = _at(*(dt.timedelta(hours=h) for h in (0, 4, 12, 16, 20)))
    finding = check_funding_times(four_hourly)
    assert finding.passed and finding.details["funding_interval_hours"] == 4
    assert finding.details["missing_between"] == 1  # 08:00
    assert "not Binance's default 8 h" in finding.description and "1 missing" in finding.description
    assert funding_grid_hours(_at(dt.timedelta(hours=3), dt.timedelta(hours=5))) == 1


def test_times_off_the_hour_duplicated_or_out_of_order_fail_and_are_listed():
    off = check_funding_times(_at(dt.timedelta(hours=8, seconds=2)))
    assert not off.passed and off.details["off_grid"] == ["2024-03-10T08:00:02+00:00"]
    assert off.details["funding_interval_hours"] is None
    twice = check_funding_times(_at(dt.timedelta(0), dt.timedelta(hours=8), dt.timedelta(0)))
    assert not twice.passed
    assert twice.details["duplicated"] == ["2024-03-10T00:00:00+00:00"] * 2
    assert twice.details["not_increasing"] == ["2024-03-10T00:00:00+00:00"]


def test_rates_beyond_the_cap_or_not_finite_and_bad_mark_prices_fail():
    assert FUNDING_RATE_CAP == 0.03
    frame = pl.concat(
        [
            _at(dt.timedelta(0), rate=0.03),  # the cap itself is allowed
            _at(dt.timedelta(hours=8), rate=-0.0301),
            _at(dt.timedelta(hours=16), rate=float("nan")),
            _at(dt.timedelta(hours=24)).with_columns(mark_price=pl.lit(0.0)),
        ]
    )
    finding = check_funding_rates(frame)
    assert not finding.passed
    assert finding.details["problems"] == [
        "|funding_rate| above the 3% cap",
        "missing or non-finite funding_rate",
        "non-positive mark_price",
    ]
    assert check_funding_rates(frame.head(1)).passed


def test_binances_docs_example_rate_is_beyond_todays_cap():
    """The docs' -3.75 % of 2019 is more than any cap fundingInfo publishes (±3 %): the check names it."""
    finding = check_funding_rates(parse_funding_rates(load_json(RECORDED)))
    assert not finding.passed and finding.details["bad_rows"] == ["2019-10-09T08:00:00+00:00"]


def test_the_real_freqtrade_funding_lies_on_the_8h_grid_and_passes_both_rules():
    frame = freqtrade_funding()
    times = check_funding_times(frame)
    assert frame.height == 91
    assert times.passed and times.details["funding_interval_hours"] == 8
    assert times.details["missing_between"] == 0
    assert (frame["funding_time"].dt.epoch("ms") % 3_600_000 > 0).sum() > 0  # real ms stamps, accepted
    assert check_funding_rates(frame).passed


def test_the_real_lean_funding_row_passes_both_rules():
    frame = lean_funding()
    assert frame.to_dicts() == [
        {
            "symbol": "ADAUSDT",
            "funding_time": dt.datetime(2022, 12, 13, tzinfo=dt.UTC),
            "funding_rate": 0.0001,
            "mark_price": None,
        }
    ]
    assert check_funding_times(frame).passed and check_funding_rates(frame).passed
