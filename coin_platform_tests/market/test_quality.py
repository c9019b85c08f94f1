"""Quality rules pass on real clean data and fail on each kind of corruption."""

import datetime as dt

import polars as pl

from coin_platform.market.klines import OHLCV_SCHEMA, resample_ohlcv
from coin_platform.market.quality import (
    check_gaps,
    check_matches_aggregate,
    check_ohlc_sanity,
    check_open_time_order,
    check_schema,
)
from coin_platform_tests.shared_data import lean_bars, lean_minute_bars

DAY = dt.date(2022, 12, 13)
START = dt.datetime(2022, 12, 13, tzinfo=dt.UTC)


def _ohlcv(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(
        quote_volume=pl.col("volume") * pl.col("close"),
        trades=pl.lit(10, dtype=pl.Int64),
        taker_buy_volume=pl.col("volume") / 2,
        taker_buy_quote_volume=pl.col("volume") * pl.col("close") / 2,
    ).select(list(OHLCV_SCHEMA))


def _minutes() -> pl.DataFrame:
    return _ohlcv(lean_minute_bars("binance/lean/cryptofuture/minute/adausdt/20221213_trade.zip", DAY))


def test_real_day_passes_every_rule():
    minutes = _minutes()
    assert check_schema(minutes).passed
    assert check_open_time_order(minutes).passed
    assert check_ohlc_sanity(minutes).passed
    assert check_gaps(minutes, "1m", START, START + dt.timedelta(days=1)).passed


def test_schema_names_missing_extra_and_mistyped_columns():
    broken = _minutes().drop("trades").with_columns(pl.col("volume").cast(pl.Int64), extra=pl.lit(1))
    finding = check_schema(broken)
    assert not finding.passed
    assert finding.details == {
        "missing": ["trades"],
        "unexpected": ["extra"],
        "wrong_types": {"volume": "Int64"},
    }


def test_duplicated_and_unordered_open_times_fail():
    minutes = _minutes()
    duplicated = pl.concat([minutes.head(3), minutes.slice(2, 1), minutes.slice(3)])
    assert not check_open_time_order(duplicated).passed
    reversed_pair = pl.concat([minutes.slice(1, 1), minutes.head(1), minutes.slice(2)])
    finding = check_open_time_order(reversed_pair)
    assert not finding.passed
    assert finding.details["not_increasing"] == ["2022-12-13T00:00:00+00:00"]


def _at_row_5(**values: float) -> list[pl.Expr]:
    return [
        pl.when(pl.int_range(pl.len()) == 5).then(pl.lit(v)).otherwise(pl.col(c)).alias(c) for c, v in values.items()
    ]


def test_ohlc_violations_fail_and_are_listed():
    minutes = _minutes()
    row_5 = minutes.row(5, named=True)
    for corruption, reason in (
        (_at_row_5(low=row_5["low"] * 2), "open outside [low, high]"),
        (_at_row_5(volume=-1.0), "negative volume"),
        (_at_row_5(close=float("nan")), "non-finite close"),
        (_at_row_5(close=float("inf"), high=float("inf")), "non-finite high; non-finite close"),
        (_at_row_5(quote_volume=float("-inf")), "non-finite quote_volume; negative quote_volume"),
        (_at_row_5(high=row_5["low"] / 2), "high < low"),
    ):
        finding = check_ohlc_sanity(minutes.with_columns(corruption))
        assert not finding.passed
        assert finding.details["bad_candles"] == ["2022-12-13T00:05:00+00:00"]
        assert reason in finding.details["problems"][0]


def test_gaps_fail_with_their_extent():
    minutes = _minutes().filter(~pl.col("open_time").dt.hour().is_in([3]))
    finding = check_gaps(minutes, "1m", START, START + dt.timedelta(days=1))
    assert not finding.passed
    assert finding.details["missing"] == 60
    assert finding.details["gaps"] == [
        {"first": "2022-12-13T03:00:00+00:00", "last": "2022-12-13T03:59:00+00:00", "candles": 60}
    ]


def test_hourly_candles_match_their_minutes_and_a_changed_one_is_caught():
    minutes = _minutes()
    hours = _ohlcv(lean_bars("binance/lean/cryptofuture/hour/adausdt_trade.zip"))
    # The exchange's hourly rows carry no quote/trade fields; compare what it published.
    derived = resample_ohlcv(minutes, "1h").drop("candles")
    hours = hours.with_columns(
        derived.select("quote_volume", "trades", "taker_buy_volume", "taker_buy_quote_volume")
    )
    assert check_matches_aggregate(hours, minutes, "1h", 60).passed
    tampered = hours.with_columns(
        pl.when(pl.int_range(pl.len()) == 7)
        .then(pl.col("high") + 0.0001)
        .otherwise(pl.col("high"))
        .alias("high")
    )
    finding = check_matches_aggregate(tampered, minutes, "1h", 60)
    assert not finding.passed
    assert finding.details == {"compared": 24, "differing": ["2022-12-13T07:00:00+00:00"]}
    incomplete = minutes.filter(pl.col("open_time") != START + dt.timedelta(hours=7, minutes=30))
    assert check_matches_aggregate(tampered, incomplete, "1h", 60).details["compared"] == 23
