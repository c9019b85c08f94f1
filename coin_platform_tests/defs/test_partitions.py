"""The shared partitions: day × symbol, year × symbol, their mappings, range tags, the retention rule."""

import datetime as dt

import dagster as dg
import pytest
import yaml

from coin_platform.defs.partitions import (
    days_into_years,
    history_partitions,
    market_partitions,
    partition_range_tags,
    past_retention,
    split_partition_keys,
    split_year_keys,
    trailing_days,
    year_range_tags,
)
from coin_platform.settings import load_settings

SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]


@pytest.fixture
def settings(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"symbols": SYMBOLS, "intervals": ["1m", "1h"], "history_start": "2024-01-01"}))
    return load_settings({"COIN_CONFIG": str(path), "COIN_HOME": str(tmp_path / ".coin")})


def test_day_partitions_run_from_the_history_start_through_today_for_every_symbol(settings):
    days = market_partitions(settings)
    assert [d.name for d in days.partitions_defs] == ["date", "symbol"]
    dates = days.partitions_defs[0].partitions_def.get_partition_keys()
    assert dates[0] == "2024-01-01"
    assert dates[-1] == dt.datetime.now(dt.UTC).date().isoformat()  # the live edge, still open
    assert days.partitions_defs[1].partitions_def.get_partition_keys() == SYMBOLS


def test_a_day_window_keeps_the_last_days_partitioned_and_every_year_of_history(tmp_path):
    path = tmp_path / "config.yaml"
    config = {"symbols": SYMBOLS, "history_start": "2020-01-01", "day_partition_days": 30}
    path.write_text(yaml.safe_dump(config))
    settings = load_settings({"COIN_CONFIG": str(path), "COIN_HOME": str(tmp_path / ".coin")})
    today = dt.datetime.now(dt.UTC).date()
    dates = market_partitions(settings).partitions_defs[0].partitions_def.get_partition_keys()
    assert dates == [(today - dt.timedelta(days=n)).isoformat() for n in range(29, -1, -1)]
    assert len(market_partitions(settings).get_partition_keys()) == 30 * len(SYMBOLS)
    years = history_partitions(settings).partitions_defs[1].partitions_def.get_partition_keys()
    assert years == [str(y) for y in range(2020, today.year + 1)]


def test_year_partitions_run_from_the_history_start_through_the_current_year(settings):
    years = history_partitions(settings)
    # Dimensions in name order: keys read SYMBOL|YEAR.
    assert [d.name for d in years.partitions_defs] == ["symbol", "year"]
    assert years.partitions_defs[0].partitions_def.get_partition_keys() == SYMBOLS
    keys = years.partitions_defs[1].partitions_def.get_partition_keys()
    assert keys == [str(y) for y in range(2024, dt.datetime.now(dt.UTC).year + 1)]


def test_a_runs_keys_split_into_sorted_days_per_symbol_and_years(settings):
    days = market_partitions(settings)
    keys = ["2024-03-11|ETHUSDT", "2024-03-10|BTCUSDT", "2024-03-10|ETHUSDT", "2024-03-09|BTCUSDT"]
    assert split_partition_keys(days, keys) == {
        "BTCUSDT": [dt.date(2024, 3, 9), dt.date(2024, 3, 10)],
        "ETHUSDT": [dt.date(2024, 3, 10), dt.date(2024, 3, 11)],
    }
    assert split_year_keys(history_partitions(settings), ["SOLUSDT|2025", "SOLUSDT|2024", "BTCUSDT|2024"]) == [
        (2024, "BTCUSDT"),
        (2024, "SOLUSDT"),
        (2025, "SOLUSDT"),
    ]


def test_trailing_days_maps_a_day_onto_itself_and_the_days_before_of_the_same_symbol(settings):
    days = market_partitions(settings)
    upstream = trailing_days(2).get_upstream_mapped_partitions_result_for_partitions(
        days.empty_subset().with_partition_keys(["2024-03-10|ETHUSDT"]), days, days
    )
    assert sorted(upstream.partitions_subset.get_partition_keys()) == [
        "2024-03-08|ETHUSDT",
        "2024-03-09|ETHUSDT",
        "2024-03-10|ETHUSDT",
    ]
    # At the history start the days before do not exist, and are not required.
    first = trailing_days(2).get_upstream_mapped_partitions_result_for_partitions(
        days.empty_subset().with_partition_keys(["2024-01-01|BTCUSDT"]), days, days
    )
    assert list(first.partitions_subset.get_partition_keys()) == ["2024-01-01|BTCUSDT"]


def test_a_year_depends_on_every_day_of_that_year_of_its_symbol(settings):
    days, years = market_partitions(settings), history_partitions(settings)
    upstream = days_into_years().get_upstream_mapped_partitions_result_for_partitions(
        years.empty_subset().with_partition_keys(["SOLUSDT|2024"]), years, days
    )
    keys = sorted(upstream.partitions_subset.get_partition_keys())
    assert len(keys) == 366 and keys[0] == "2024-01-01|SOLUSDT" and keys[-1] == "2024-12-31|SOLUSDT"


def test_range_tags_name_one_rectangle_of_partitions():
    assert partition_range_tags(dt.date(2024, 3, 9), dt.date(2024, 3, 10), "BTCUSDT", "SOLUSDT") == {
        "dagster/asset_partition_range_start": "2024-03-09|BTCUSDT",
        "dagster/asset_partition_range_end": "2024-03-10|SOLUSDT",
    }
    assert year_range_tags(2024, 2025, "BTCUSDT", "ETHUSDT") == {
        "dagster/asset_partition_range_start": "BTCUSDT|2024",
        "dagster/asset_partition_range_end": "ETHUSDT|2025",
    }
    assert isinstance(
        partition_range_tags(dt.date(2024, 3, 9), dt.date(2024, 3, 9), "A", "A")["dagster/asset_partition_range_start"],
        dg.MultiPartitionKey,
    )


def test_a_day_is_past_retention_once_its_last_candle_is_older_than_the_window():
    day = dt.date(2024, 3, 10)
    end_of_day = dt.datetime(2024, 3, 11, tzinfo=dt.UTC)
    assert not past_retention(day, end_of_day + dt.timedelta(days=3) - dt.timedelta(milliseconds=1), 3)
    assert past_retention(day, end_of_day + dt.timedelta(days=3), 3)
    assert not past_retention(day, end_of_day + dt.timedelta(days=2), 3)
    assert past_retention(day, end_of_day + dt.timedelta(days=1), 1)
