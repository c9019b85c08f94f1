"""The partitions every domain shares: UTC day × symbol (market data and everything derived
from it) and UTC year × symbol (the history archive), their mappings, and the run tags that
make a rectangle of them one run. Symbols come from config.yaml."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from coin_platform.settings import Settings
from coin_platform.storage.layout import day_start

DATE = "date"
SYMBOL = "symbol"
YEAR = "year"


def _first_day(settings: Settings) -> str:
    return settings.config.first_partition_day(dt.datetime.now(dt.UTC).date()).isoformat()


def market_partitions(settings: Settings) -> dg.MultiPartitionsDefinition:
    """Daily UTC partitions from config's first partition day up to and including today (the live edge)
    × configured symbols."""
    return dg.MultiPartitionsDefinition(
        {
            DATE: dg.DailyPartitionsDefinition(start_date=_first_day(settings), end_offset=1),
            SYMBOL: dg.StaticPartitionsDefinition(list(settings.config.all_symbols)),
        }
    )


def daily_partitions(settings: Settings) -> dg.DailyPartitionsDefinition:
    """Daily UTC partitions up to and including today, every symbol at once (the trading record's days)."""
    return dg.DailyPartitionsDefinition(start_date=_first_day(settings), end_offset=1)


def market_backfill_policy(settings: Settings) -> dg.BackfillPolicy:
    """Up to ingestion.max_partitions_per_run day × symbol partitions a backfill run: one policy for every asset of
    the market partitions, so a backfill of the ingest job's assets splits into the same runs for all of them."""
    return dg.BackfillPolicy.multi_run(max_partitions_per_run=settings.config.ingestion.max_partitions_per_run)


def history_partitions(settings: Settings) -> dg.MultiPartitionsDefinition:
    """UTC years from the history start up to the current one × configured symbols."""
    return dg.MultiPartitionsDefinition(
        {
            YEAR: dg.TimeWindowPartitionsDefinition(
                cron_schedule="0 0 1 1 *",
                start=str(settings.config.history_start.year),
                fmt="%Y",
                timezone="UTC",
                end_offset=1,
            ),
            SYMBOL: dg.StaticPartitionsDefinition(list(settings.config.all_symbols)),
        }
    )


def split_partition_keys(partitions_def: dg.MultiPartitionsDefinition, keys: list[str]) -> dict[str, list[dt.date]]:
    """Partition keys of a run (one or a range) -> days per symbol."""
    days: dict[str, list[dt.date]] = {}
    for key in keys:
        by_dimension = partitions_def.get_partition_key_from_str(key).keys_by_dimension
        days.setdefault(by_dimension[SYMBOL], []).append(dt.date.fromisoformat(by_dimension[DATE]))
    return {symbol: sorted(dates) for symbol, dates in days.items()}


def trailing_days(days: int) -> dg.MultiPartitionMapping:
    """Each day × symbol depends on the same symbol's day and the `days` days before it."""
    return dg.MultiPartitionMapping(
        {
            DATE: dg.DimensionPartitionMapping(
                DATE,
                dg.TimeWindowPartitionMapping(
                    start_offset=-days, end_offset=0, allow_nonexistent_upstream_partitions=True
                ),
            ),
            SYMBOL: dg.DimensionPartitionMapping(SYMBOL, dg.IdentityPartitionMapping()),
        }
    )


def split_year_keys(partitions_def: dg.MultiPartitionsDefinition, keys: list[str]) -> list[tuple[int, str]]:
    """Year × symbol partition keys of a run -> sorted (year, symbol) pairs."""
    pairs = []
    for key in keys:
        by_dimension = partitions_def.get_partition_key_from_str(key).keys_by_dimension
        pairs.append((int(by_dimension[YEAR]), by_dimension[SYMBOL]))
    return sorted(pairs)


def days_into_years() -> dg.MultiPartitionMapping:
    """Each year partition depends on its days' partitions of the same symbol."""
    return dg.MultiPartitionMapping(
        {
            DATE: dg.DimensionPartitionMapping(
                YEAR, dg.TimeWindowPartitionMapping(allow_nonexistent_upstream_partitions=True)
            ),
            SYMBOL: dg.DimensionPartitionMapping(SYMBOL, dg.IdentityPartitionMapping()),
        }
    )


def past_retention(day: dt.date, now: dt.datetime, retention_days: int) -> bool:
    """The whole day is past the hot store's retention window (its TTL would already delete every row).

    Shared by the hot_store and features assets: days past it are not written to ClickHouse.
    """
    return day_start(day) + dt.timedelta(days=1) <= now - dt.timedelta(days=retention_days)


# Hot rows this close to their TTL are neither written nor compared: ClickHouse's TTL merges may drop them at any
# moment, between the insert and the FINAL count that verifies it (a backfill failed so, at a minute's turn).
HOT_TTL_MARGIN = dt.timedelta(minutes=10)


def hot_window_start(now: dt.datetime, retention_days: int) -> dt.datetime:
    """Candles opening after this are written to the hot store and compared with their objects: HOT_TTL_MARGIN
    inside the TTL, so none of them expires while the asset or its check runs."""
    return now - dt.timedelta(days=retention_days) + HOT_TTL_MARGIN


def date_symbol_key(day: dt.date, symbol: str) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({DATE: day.isoformat(), SYMBOL: symbol})


def year_symbol_key(year: int, symbol: str) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({YEAR: str(year), SYMBOL: symbol})


def partition_range_tags(first_day: dt.date, last_day: dt.date, first_symbol: str, last_symbol: str) -> dict[str, str]:
    """Run tags for the rectangle [first_day, last_day] × [first_symbol, last_symbol] (one run)."""
    return {
        "dagster/asset_partition_range_start": date_symbol_key(first_day, first_symbol),
        "dagster/asset_partition_range_end": date_symbol_key(last_day, last_symbol),
    }


def year_range_tags(first_year: int, last_year: int, first_symbol: str, last_symbol: str) -> dict[str, str]:
    """Run tags for the rectangle [first_year, last_year] × [first_symbol, last_symbol] (one run)."""
    return {
        "dagster/asset_partition_range_start": year_symbol_key(first_year, first_symbol),
        "dagster/asset_partition_range_end": year_symbol_key(last_year, last_symbol),
    }
