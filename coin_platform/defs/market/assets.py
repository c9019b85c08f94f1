"""Raw klines and cleaned OHLCV assets, one pair per interval, and the funding rates, all partitioned by
day × symbol.

The pair is one multi-asset that cannot be subset: fetching and cleaning are one
step, so materializing or backfilling either asset makes both. A run may hold one
partition or a range (backfills run `max_partitions_per_run` partitions per run);
the domain functions fetch each symbol's contiguous days in one paginated pass.
"""

import datetime as dt
from collections.abc import Iterator
from typing import NamedTuple

import dagster as dg
import polars as pl
from pydantic import Field

from coin_platform.core.intervals import DAY_MS, interval_ms
from coin_platform.defs.domain import CANDLE_TO_CANDIDATE_OP_TAGS
from coin_platform.defs.partitions import market_backfill_policy, split_partition_keys
from coin_platform.defs.resources import BinanceResource, ObjectStoreResource
from coin_platform.ops.logs import CANDLES_STORED, log_event
from coin_platform.pipeline.funding import FundingDay, ingest_funding
from coin_platform.pipeline.ingest import (
    OhlcvDay,
    build_ohlcv_day,
    ingest_raw_klines,
)
from coin_platform.settings import Settings
from coin_platform.storage.ohlcv import read_ohlcv_day

MARKET_GROUP = "market"
FUNDING_ASSET = "funding_rates"
_SPARK = "▁▂▃▄▅▆▇█"


class FetchConfig(dg.Config):
    only_missing: bool = Field(
        default=False,
        description=(
            "Keep stored candles and fetch/write only what comes after the last stored one "
            "(the live schedules set this). Off: the partition is fetched and written again "
            "whole, which is how a bad partition is repaired."
        ),
    )


def _preview(frame: pl.DataFrame, rows: int = 5) -> dg.MetadataValue:
    return dg.MetadataValue.md(frame.tail(rows).to_pandas().to_markdown(index=False))


def _ohlcv_metadata(days: list[OhlcvDay], source: str) -> dict[str, object]:
    first = [d.first_open for d in days if d.first_open is not None]
    last = [d.last_open for d in days if d.last_open is not None]
    gaps = [
        {"symbol": d.symbol, "date": d.day.isoformat(), **gap.as_dict()}
        for d in days
        for gap in d.gaps
    ]
    quarantined = [
        {"symbol": d.symbol, "date": d.day.isoformat(), **q.as_dict()} for d in days for q in d.quarantined
    ]
    return {
        "source": source,
        "partitions": len(days),
        "dagster/row_count": sum(d.rows for d in days),
        "first_open_time": min(first).isoformat() if first else "none",
        "last_open_time": max(last).isoformat() if last else "none",
        "expected_candles": sum(d.expected for d in days),
        "missing_candles": sum(d.missing for d in days),
        "gaps": dg.MetadataValue.json(gaps[:100]),
        "files_written": sum(d.files_written for d in days),
        "stale_files_deleted": sum(d.files_deleted for d in days),
        "duplicates_dropped": sum(d.duplicates_dropped for d in days),
        "unclosed_dropped": sum(d.unclosed_dropped for d in days),
        "misaligned_dropped": sum(d.misaligned_dropped for d in days),
        "zero_volume_dropped": sum(d.zero_volume_dropped for d in days),
        "quarantined_candles": sum(len(d.quarantined) for d in days),
        "quarantined": dg.MetadataValue.json(quarantined[:100]),
    }


class MarketAssets(NamedTuple):
    """One interval's fetch-and-clean step: the multi-asset and the specs of the two assets it makes."""

    step: dg.AssetsDefinition
    raw: dg.AssetSpec
    ohlcv: dg.AssetSpec

    @property
    def op_name(self) -> str:
        """The op whose run config (FetchConfig) the live schedules set."""
        return self.step.op.name


def market_op_name(interval: str) -> str:
    return f"fetch_and_clean_{interval}"


def build_market_assets(
    interval: str, partitions_def: dg.MultiPartitionsDefinition, settings: Settings
) -> MarketAssets:
    """raw_klines_{interval} and ohlcv_{interval}, materialized together by one step.

    One step, not two assets: cleaning reads the raw objects the same run has just
    written, so a user who materializes (or backfills) either asset gets both, and
    no selection can ask for the cleaned days without their raw days.
    """
    backfill_policy = market_backfill_policy(settings)
    drop_zero_volume = settings.config.cleaning.drop_zero_volume
    candles_per_day = DAY_MS // interval_ms(interval)
    raw_spec = dg.AssetSpec(
        key=f"raw_klines_{interval}",
        group_name=MARKET_GROUP,
        kinds={"binance", "parquet", "s3"},
        description=(
            f"Binance USD-M {interval} klines as returned by GET /fapi/v1/klines, all 12 fields "
            f"typed, closed candles only; one object per UTC day at "
            f"raw/klines/{interval}/{{symbol}}/{{yyyy-MM-dd}}.parquet. Materialized together "
            f"with ohlcv_{interval} by one step."
        ),
    )
    ohlcv_spec = dg.AssetSpec(
        key=f"ohlcv_{interval}",
        group_name=MARKET_GROUP,
        deps=[raw_spec],
        kinds={"polars", "parquet", "s3"},
        description=(
            f"Cleaned {interval} OHLCV: sorted, deduplicated, closed candles, one schema for every "
            f"interval; impossible candles (NaN, inf, prices ≤ 0, high < low, ...) quarantined as gaps; "
            f"gaps and quarantined candles listed in metadata. One object per UTC hour at "
            f"ohlcv/{interval}/{{symbol}}/{{yyyy-MM-dd_HH}}.parquet ({candles_per_day} candles a day). "
            f"Cleaned in the step that fetches raw_klines_{interval}."
        ),
    )

    @dg.multi_asset(
        name=market_op_name(interval),
        specs=[raw_spec, ohlcv_spec],
        can_subset=False,
        partitions_def=partitions_def,
        backfill_policy=backfill_policy,
        op_tags=CANDLE_TO_CANDIDATE_OP_TAGS,
        description=f"Fetch the partitions' {interval} klines from the exchange, store them raw, clean them.",
    )
    def fetch_and_clean(
        context: dg.AssetExecutionContext,
        config: FetchConfig,
        binance: BinanceResource,
        object_store: ObjectStoreResource,
    ) -> Iterator[dg.MaterializeResult]:
        days_by_symbol = split_partition_keys(partitions_def, list(context.partition_keys))
        store = object_store.get_store()
        with binance.get_client() as client:
            client.validate_symbols(days_by_symbol)
            results = []
            for symbol, days in days_by_symbol.items():
                stored = ingest_raw_klines(client, store, interval, symbol, days, only_missing=config.only_missing)
                results += stored
                log_event(
                    context.log,
                    CANDLES_STORED,
                    f"{symbol} {interval}: {len(days)} day(s) of raw klines stored",
                    symbol=symbol,
                    interval=interval,
                    days=[d.day for d in stored],
                    candles_fetched=sum(d.fetched for d in stored),
                )
            stats = dict(client.stats)
            waited = client.limiter.waited_seconds
        # Reported before cleaning starts: if cleaning fails, the raw days stay recorded as stored.
        yield dg.MaterializeResult(
            asset_key=raw_spec.key,
            metadata={
                "source": binance.source,
                "partitions": len(results),
                "dagster/row_count": sum(r.rows for r in results),
                "candles_fetched": sum(r.fetched for r in results),
                "requests": stats["requests"],
                "kline_requests": stats["kline_requests"],
                "request_weight": stats["weight"],
                "retries": stats["retries"],
                "rate_limited_responses": stats["rate_limited"],
                "weight_limiter_wait_s": round(waited, 3),
                "only_missing": config.only_missing,
                "objects": dg.MetadataValue.json([r.key for r in results[:50]]),
            },
        )
        now = dt.datetime.now(dt.UTC)
        built = [
            build_ohlcv_day(
                store,
                interval,
                symbol,
                day,
                now=now,
                drop_zero_volume=drop_zero_volume,
                only_missing=config.only_missing,
            )
            for symbol, days in days_by_symbol.items()
            for day in days
        ]
        for day in built:
            log_event(
                context.log,
                CANDLES_STORED,
                f"{day.symbol} {interval} {day.day}: {day.rows} cleaned candles, newest opened at "
                f"{day.last_open.isoformat() if day.last_open else 'none'}",
                symbol=day.symbol,
                interval=interval,
                day=day.day,
                open_time=day.last_open,
                rows=day.rows,
                missing=day.missing,
            )
            if day.quarantined:
                context.log.warning(
                    f"{day.symbol} {interval} {day.day}: {len(day.quarantined)} impossible candle(s) "
                    f"quarantined, first at {day.quarantined[0].open_time.isoformat()}: {day.quarantined[0].reason}"
                )
            if day.missing:
                context.log.warning(
                    f"{day.symbol} {interval} {day.day}: {day.missing} candles missing "
                    f"in {len(day.gaps)} gap(s)"
                )
        metadata = _ohlcv_metadata(built, binance.source)
        if len(built) == 1 and built[0].rows:
            metadata["preview"] = _preview(
                read_ohlcv_day(store, interval, built[0].symbol, built[0].day)
            )
        yield dg.MaterializeResult(asset_key=ohlcv_spec.key, metadata=metadata)

    # The specs as the step holds them (with its partitions), for the downstream assets' deps.
    specs = {spec.key: spec for spec in fetch_and_clean.specs}
    return MarketAssets(fetch_and_clean, specs[raw_spec.key], specs[ohlcv_spec.key])


def sparkline(values: list[float]) -> str:
    """Values as a row of block characters, lowest ▁ to highest █ (all ▄ when they are equal)."""
    if not values:
        return ""
    low, high = min(values), max(values)
    if high == low:
        return _SPARK[len(_SPARK) // 2] * len(values)
    return "".join(_SPARK[round((v - low) / (high - low) * (len(_SPARK) - 1))] for v in values)


def _funding_metadata(days: list[FundingDay], source: str, stats: dict[str, int], waited_s: float) -> dict[str, object]:
    rows = pl.concat([d.rows for d in days]).sort("funding_time", "symbol")
    rates = rows["funding_rate"]
    summary = (
        rows.group_by("symbol", maintain_order=True)
        .agg(
            funding_times=pl.len(),
            min_rate=pl.col("funding_rate").min(),
            mean_rate=pl.col("funding_rate").mean(),
            max_rate=pl.col("funding_rate").max(),
            rates=pl.col("funding_rate"),
        )
        .sort("symbol")
        .with_columns(pl.col("rates").map_elements(lambda r: sparkline(r.to_list()), return_dtype=pl.String))
    )
    metadata: dict[str, object] = {
        "source": source,
        "partitions": len(days),
        "dagster/row_count": rows.height,
        "requests": stats["requests"],
        "funding_requests": stats["funding_requests"],
        "retries": stats["retries"],
        "rate_limited_responses": stats["rate_limited"],
        "limiter_wait_s": round(waited_s, 3),
        "objects": dg.MetadataValue.json([d.key for d in days[:50]]),
    }
    if rows.height:
        times = rows["funding_time"]
        metadata |= {
            "first_funding_time": times.min().isoformat(),  # type: ignore[union-attr]
            "last_funding_time": times.max().isoformat(),  # type: ignore[union-attr]
            "min_rate": float(rates.min()),  # type: ignore[arg-type]
            "mean_rate": float(rates.mean()),  # type: ignore[arg-type]
            "max_rate": float(rates.max()),  # type: ignore[arg-type]
            "by_symbol": dg.MetadataValue.md(summary.to_pandas().to_markdown(index=False, floatfmt=".8f")),
            "preview": _preview(rows),
        }
    return metadata


def build_funding_asset(partitions_def: dg.MultiPartitionsDefinition, settings: Settings) -> dg.AssetsDefinition:
    """funding_rates: each day × symbol's funding rates from GET /fapi/v1/fundingRate, one object a day."""

    @dg.asset(
        name=FUNDING_ASSET,
        group_name=MARKET_GROUP,
        partitions_def=partitions_def,
        backfill_policy=market_backfill_policy(settings),
        kinds={"binance", "parquet", "s3"},
        description=(
            "USD-M perpetual funding rates as GET /fapi/v1/fundingRate returns them: symbol, funding_time "
            "(UTC, Binance's stamp a few ms after the hour), funding_rate, mark_price (null where Binance "
            "sends none); the funding times of the day that have passed, so a day is final once it has "
            "closed. One object per UTC day at funding/{symbol}/{yyyy-MM-dd}.parquet."
        ),
    )
    def funding_rates(
        context: dg.AssetExecutionContext, binance: BinanceResource, object_store: ObjectStoreResource
    ) -> dg.MaterializeResult:
        days_by_symbol = split_partition_keys(partitions_def, list(context.partition_keys))
        store = object_store.get_store()
        stored: list[FundingDay] = []
        with binance.get_client() as client:
            client.validate_symbols(days_by_symbol)
            for symbol, days in days_by_symbol.items():
                stored += ingest_funding(client, store, symbol, days)
                context.log.info(f"{symbol} funding: {len(days)} day(s) stored")
            stats = dict(client.stats)
            waited = client.limiter.waited_seconds + client.funding_limiter.waited_seconds
        return dg.MaterializeResult(metadata=_funding_metadata(stored, binance.source, stats, waited))

    return funding_rates
