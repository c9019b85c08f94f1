"""Kline parsing, cleaning, gap detection and resampling, on real Binance data where it exists."""

import datetime as dt

import pandas as pd
import polars as pl
import pytest

from coin_platform.core.time import UTC_MS
from coin_platform.market.klines import (
    OHLCV_SCHEMA,
    RAW_KLINE_COLUMNS,
    RAW_KLINE_SCHEMA,
    MalformedKlinesError,
    clean_klines,
    find_gaps,
    parse_kline_rows,
    resample_ohlcv,
)
from coin_platform_tests.shared_data import lean_bars, lean_minute_bars, load_json, shared_file

ADA_DAY = dt.date(2022, 12, 13)
ADA_1M = "binance/lean/cryptofuture/minute/adausdt/20221213_trade.zip"


def _row(open_ms: int, close: str = "100.0", volume: str = "1.5", step: int = 60_000) -> list:
    return [
        open_ms,
        "100.0",
        "101.0",
        "99.0",
        close,
        volume,
        open_ms + step - 1,
        "150.0",
        7,
        "0.5",
        "50.0",
        "0",
    ]


def test_parses_a_recorded_futures_response():
    rows = load_json("binance/api_samples/nautilus_trader/http_futures_market_continuous_klines.json")
    frame = parse_kline_rows(rows)
    assert frame.schema == pl.Schema(RAW_KLINE_SCHEMA)
    row = frame.row(0, named=True)
    assert row["open_time"] == dt.datetime(2020, 12, 8, 16, 25, tzinfo=dt.UTC)
    assert row["close_time"] - row["open_time"] == dt.timedelta(milliseconds=59_999)
    assert (row["open"], row["close"], row["volume"], row["trades"]) == (18879.99, 18896.13, 492.363, 1874)


def test_parses_recorded_spot_rows_with_eight_decimals():
    frame = parse_kline_rows(load_json("binance/api_samples/nautilus_trader/http_spot_market_klines.json"))
    assert frame.height == 10
    assert frame["open_time"].is_sorted()
    assert frame["open"][0] == 60685.22


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"code": -1121}, "expected a JSON array"),
        ([[1, "1"]], "row 0 is not a 12-field kline"),
        ([_row(0), _row(60_000)[:11]], "row 1 is not a 12-field kline"),
        ([_row(0), _row(60_000, close="abc")], "row 1 field 'close' is not a number: 'abc'"),
    ],
)
def test_malformed_payloads_name_the_bad_row(payload, message):
    with pytest.raises(MalformedKlinesError, match=message):
        parse_kline_rows(payload)


def test_cleaning_sorts_deduplicates_and_drops_unclosed_misaligned_and_zero_volume():
    base = 1_700_000_040_000 - 1_700_000_040_000 % 60_000
    rows = [
        _row(base + 120_000),
        _row(base, close="99.5"),
        _row(base + 60_000, volume="0"),
        _row(base, close="100.5"),  # a later copy of the first candle wins
        _row(base + 90_000),  # not on the minute grid
        _row(base + 180_000),  # still open at `now`
    ]
    now = dt.datetime.fromtimestamp((base + 200_000) / 1000, dt.UTC)
    cleaned = clean_klines(parse_kline_rows(rows), "1m", now=now)
    assert cleaned.frame.schema == pl.Schema(OHLCV_SCHEMA)
    assert cleaned.frame["open_time"].dt.epoch("ms").to_list() == [base, base + 60_000, base + 120_000]
    assert cleaned.frame["close"][0] == 100.5
    assert (cleaned.unclosed_dropped, cleaned.misaligned_dropped, cleaned.duplicates_dropped) == (1, 1, 1)
    filtered = clean_klines(parse_kline_rows(rows), "1m", now=now, drop_zero_volume=True)
    assert filtered.zero_volume_dropped == 1
    assert filtered.frame.height == 2


def _bad(open_ms: int, **fields: str) -> list:
    row = _row(open_ms)
    for name, value in fields.items():
        row[RAW_KLINE_COLUMNS.index(name)] = value
    return row


def test_impossible_candles_are_quarantined_with_their_reason_leaving_a_gap():
    base = 1_700_000_040_000 - 1_700_000_040_000 % 60_000
    rows = [
        _row(base),
        _bad(base + 60_000, close="NaN"),
        _bad(base + 120_000, close="inf", high="inf"),
        _bad(base + 180_000, low="-1"),
        _bad(base + 240_000, high="98.0"),
        _bad(base + 300_000, open="102.0"),
        _bad(base + 360_000, volume="-0.5"),
        _row(base + 420_000),
        _row(base + 480_000),
        _bad(base + 480_000, close="nan"),  # the exchange's last copy is broken: quarantined too
    ]
    now = dt.datetime.fromtimestamp((base + 600_000) / 1000, dt.UTC)
    cleaned = clean_klines(parse_kline_rows(rows), "1m", now=now)
    assert cleaned.frame["open_time"].dt.epoch("ms").to_list() == [base, base + 420_000]
    quarantined = cleaned.quarantined.with_columns(pl.col("open_time").dt.epoch("ms"))
    assert quarantined.rows() == [
        (base + 60_000, "non-finite close"),
        (base + 120_000, "non-finite high; non-finite close"),
        (base + 180_000, "non-positive low"),
        (base + 240_000, "high < low; open outside [low, high]; close outside [low, high]"),
        (base + 300_000, "open outside [low, high]"),
        (base + 360_000, "negative volume"),
        (base + 480_000, "non-finite close"),
    ]
    start = dt.datetime.fromtimestamp(base / 1000, dt.UTC)
    report = find_gaps(cleaned.frame["open_time"], "1m", start, start + dt.timedelta(minutes=9))
    assert report.missing == 7


def test_gaps_in_real_sparse_candles():
    frame = pd.read_feather(shared_file("crypto_other/freqtrade/spot/XRP_ETH-1m.feather"))
    times = pl.from_pandas(frame)["date"].cast(UTC_MS)
    report = find_gaps(times, "1m", times.min(), times.max() + dt.timedelta(minutes=1))
    assert (report.expected, report.missing, len(report.gaps)) == (3560, 1091, 676)
    assert sum(g.candles for g in report.gaps) == report.missing
    assert all(g.first <= g.last for g in report.gaps)
    assert not times.is_in(pl.Series([g.first for g in report.gaps]).implode()).any()


def test_no_gaps_in_a_complete_day():
    minutes = lean_minute_bars(ADA_1M, ADA_DAY)
    start = dt.datetime(2022, 12, 13, tzinfo=dt.UTC)
    report = find_gaps(minutes["open_time"], "1m", start, start + dt.timedelta(days=1))
    assert (report.expected, report.missing, report.gaps) == (1440, 0, [])


def _as_ohlcv(frame: pl.DataFrame) -> pl.DataFrame:
    missing = {c: pl.lit(0, dtype=t) for c, t in OHLCV_SCHEMA.items() if c not in frame.columns}
    return frame.with_columns(**missing).select(list(OHLCV_SCHEMA))


def test_real_1m_candles_aggregate_to_the_exchanges_1h_and_1d_rows():
    """Oracle: Binance's own ADAUSDT 1h and daily bars are the aggregates of its 1m bars."""
    minutes = _as_ohlcv(lean_minute_bars(ADA_1M, ADA_DAY))
    hours = lean_bars("binance/lean/cryptofuture/hour/adausdt_trade.zip")
    daily = lean_bars("binance/lean/cryptofuture/daily/adausdt_trade.zip")
    columns = ["open_time", "open", "high", "low", "close", "volume"]

    to_hours = resample_ohlcv(minutes, "1h")
    assert to_hours["candles"].to_list() == [60] * 24
    assert to_hours.select(columns).equals(hours.select(columns))

    to_day = resample_ohlcv(minutes, "1d").select(columns)
    assert to_day.equals(daily.filter(pl.col("open_time").dt.date() == ADA_DAY).select(columns))
