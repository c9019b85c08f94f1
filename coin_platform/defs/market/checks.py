"""Asset checks on the cleaned OHLCV and the funding partitions, reading what was actually stored.

One multi-check per interval reads each partition's hourly objects once and
applies every rule from `coin_platform.market.quality` to them; one for the funding
rates applies `coin_platform.market.funding`'s. In a range run the result covers the
whole range and lists the partitions that failed.
"""

import datetime as dt
from collections.abc import Iterator

import dagster as dg

from coin_platform.core.intervals import interval_ms
from coin_platform.defs.partitions import split_partition_keys
from coin_platform.defs.resources import ObjectStoreResource
from coin_platform.market.funding import check_funding_rates, check_funding_times
from coin_platform.market.klines import SchemaMismatchError
from coin_platform.market.quality import (
    Finding,
    check_gaps,
    check_matches_aggregate,
    check_ohlc_sanity,
    check_open_time_order,
    check_schema,
)
from coin_platform.pipeline.ingest import covered_until
from coin_platform.storage.funding import read_funding
from coin_platform.storage.layout import day_start
from coin_platform.storage.ohlcv import read_ohlcv_day

SCHEMA = "schema"
ORDER = "unique_increasing_open_time"
SANITY = "ohlc_sanity"
GAPS = "no_gaps"
AGGREGATE = "matches_1m_aggregate"
DESCRIPTIONS = {
    SCHEMA: "Stored columns and types equal the OHLCV schema.",
    ORDER: "open_time is unique and strictly increasing.",
    SANITY: (
        "Every value finite and present, prices > 0, low ≤ open, close ≤ high, volumes ≥ 0. "
        "Blocking: downstream assets of the run do not run on a failure."
    ),
    GAPS: "No candle is missing between the day's start and its last closed candle.",
    AGGREGATE: "Each candle equals the aggregate of its 1m candles wherever all of them are stored.",
}
SEVERITY = {GAPS: dg.AssetCheckSeverity.WARN}
# An impossible candle must not reach the hot store or the features (one NaN poisons every EMA after it).
BLOCKING = {SANITY}


def _check_result(
    name: str,
    asset_key: dg.AssetKey,
    results: list[tuple[str, Finding]],
    severity: dg.AssetCheckSeverity,
    metadata: dict[str, object] | None = None,
) -> dg.AssetCheckResult:
    """One check's result over a run's partitions: the one description, or how many pass and which failed."""
    failed = [(label, f) for label, f in results if not f.passed]
    description = (
        results[0][1].description
        if len(results) == 1
        else f"{len(results) - len(failed)} of {len(results)} partitions pass"
    )
    return dg.AssetCheckResult(
        check_name=name,
        asset_key=asset_key,
        passed=not failed,
        severity=severity,
        description=description,
        metadata={
            "partitions_checked": len(results),
            "failed_partitions": dg.MetadataValue.json(
                {label: {"problem": f.description, **f.details} for label, f in failed[:20]}
            ),
            **(metadata or {}),
        },
    )


def build_ohlcv_checks(
    interval: str,
    ohlcv_asset: dg.AssetsDefinition,
    partitions_def: dg.MultiPartitionsDefinition,
    compare_with_1m: bool,
) -> dg.AssetChecksDefinition:
    names = [SCHEMA, ORDER, SANITY, GAPS] + ([AGGREGATE] if compare_with_1m else [])
    specs = [
        dg.AssetCheckSpec(
            name,
            asset=ohlcv_asset.key,
            partitions_def=partitions_def,
            description=DESCRIPTIONS[name],
            blocking=name in BLOCKING,
        )
        for name in names
    ]
    fine_per_coarse = interval_ms(interval) // interval_ms("1m")

    @dg.multi_asset_check(specs=specs, name=f"ohlcv_{interval}_checks")
    def ohlcv_checks(
        context: dg.AssetCheckExecutionContext, object_store: ObjectStoreResource
    ) -> Iterator[dg.AssetCheckResult]:
        store = object_store.get_store()
        now = dt.datetime.now(dt.UTC)
        findings: dict[str, list[tuple[str, Finding]]] = {name: [] for name in names}
        days_by_symbol = split_partition_keys(partitions_def, list(context.partition_keys))
        for symbol, days in days_by_symbol.items():
            for day in days:
                label = f"{day.isoformat()}|{symbol}"
                try:
                    frame = read_ohlcv_day(store, interval, symbol, day)
                    schema = check_schema(frame)
                except SchemaMismatchError as exc:
                    schema = Finding(False, str(exc))
                findings[SCHEMA].append((label, schema))
                if not schema.passed:
                    skipped = Finding(False, "not evaluated: the stored schema is wrong")
                    for name in names[1:]:
                        findings[name].append((label, skipped))
                    continue
                findings[ORDER].append((label, check_open_time_order(frame)))
                findings[SANITY].append((label, check_ohlc_sanity(frame)))
                end = covered_until(day, interval, now)
                findings[GAPS].append((label, check_gaps(frame, interval, day_start(day), end)))
                if compare_with_1m:
                    fine = read_ohlcv_day(store, "1m", symbol, day)
                    findings[AGGREGATE].append(
                        (label, check_matches_aggregate(frame, fine, interval, fine_per_coarse))
                    )
        for name in names:
            yield _check_result(name, ohlcv_asset.key, findings[name], SEVERITY.get(name, dg.AssetCheckSeverity.ERROR))

    return ohlcv_checks


FUNDING_GRID = "funding_times_on_grid"
FUNDING_CAP = "funding_rates_within_cap"
FUNDING_DESCRIPTIONS = {
    FUNDING_GRID: (
        "Funding times are unique, increasing and on a whole-hour grid from 00:00 UTC (within 1 s of the "
        "hour); the grid is reported: 8 h is Binance's default, other intervals (4 h, 1 h) pass and are named."
    ),
    FUNDING_CAP: "Every funding rate is finite and within ±3 %, every mark price null or finite and positive.",
}


def build_funding_checks(
    funding_asset: dg.AssetsDefinition, partitions_def: dg.MultiPartitionsDefinition
) -> dg.AssetChecksDefinition:
    """The funding partitions' checks, on the stored objects."""
    specs = [
        dg.AssetCheckSpec(name, asset=funding_asset.key, partitions_def=partitions_def, description=description)
        for name, description in FUNDING_DESCRIPTIONS.items()
    ]

    @dg.multi_asset_check(specs=specs, name="funding_rates_checks")
    def funding_checks(
        context: dg.AssetCheckExecutionContext, object_store: ObjectStoreResource
    ) -> Iterator[dg.AssetCheckResult]:
        store = object_store.get_store()
        findings: dict[str, list[tuple[str, Finding]]] = {name: [] for name in FUNDING_DESCRIPTIONS}
        intervals: dict[str, int | None] = {}
        for symbol, days in split_partition_keys(partitions_def, list(context.partition_keys)).items():
            for day in days:
                label = f"{day.isoformat()}|{symbol}"
                start = day_start(day)
                try:
                    frame = read_funding(store, [symbol], start, start + dt.timedelta(days=1))
                except SchemaMismatchError as exc:
                    for name in FUNDING_DESCRIPTIONS:
                        findings[name].append((label, Finding(False, str(exc))))
                    continue
                grid = check_funding_times(frame)
                intervals[label] = grid.details["funding_interval_hours"]  # type: ignore[assignment]
                findings[FUNDING_GRID].append((label, grid))
                findings[FUNDING_CAP].append((label, check_funding_rates(frame)))
        reported = {FUNDING_GRID: {"funding_interval_hours": dg.MetadataValue.json(intervals)}}
        for name, results in findings.items():
            yield _check_result(name, funding_asset.key, results, dg.AssetCheckSeverity.ERROR, reported.get(name))

    return funding_checks
