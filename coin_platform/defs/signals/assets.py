"""`candidates_{interval}`: strategy signals on closed candles, recorded in ClickHouse and
published to Kafka (`events.candidates_topic`), partition-aligned with the features.

A partition reads the stored features of its day and of the days before it that the
strategies look back at; only when a configured strategy needs a series that is not
stored (and recursive) does it read the OHLCV look-back, and then it declares that too,
with the features' look-back mapping (coin_platform.pipeline.candidates).

A rerun finds the same candidates (deterministic ids) and republishes none that
went out before; candidates of candles older than `events.publish_max_age_seconds`
are recorded but not published, so a backfill never trades.
"""

import datetime as dt
from collections.abc import Sequence

import dagster as dg

from coin_platform.defs.automation import REBUILD_AFTER_INPUT_REPAIR
from coin_platform.defs.domain import CANDLE_TO_CANDIDATE_OP_TAGS
from coin_platform.defs.partitions import market_backfill_policy, split_partition_keys, trailing_days
from coin_platform.defs.resources import CLICKHOUSE_POOL, ClickHouseResource, KafkaResource, ObjectStoreResource
from coin_platform.events.kafka import publish
from coin_platform.events.schemas import Candidate
from coin_platform.events.trace_ids import candidate_ids
from coin_platform.features import lookback_days
from coin_platform.ops.logs import CANDIDATE_PUBLISHED, CANDIDATES_DETECTED, log_event
from coin_platform.pipeline.candidates import detect_candidates, feature_days_before, needs_candles, plan_publication
from coin_platform.settings import Settings
from coin_platform.strategies import build_strategies

CANDIDATES_GROUP = "signals"
PREVIEW_ROWS = 10


def _publish(
    context: dg.AssetExecutionContext, kafka: KafkaResource, topic: str, candidates: Sequence[Candidate]
) -> None:
    kafka.ensure_topics([topic])
    with kafka.producer() as producer:
        offsets = publish(producer, topic, [(c.symbol.encode(), c.to_json()) for c in candidates])
    for candidate, offset in zip(candidates, offsets, strict=True):
        log_event(
            context.log,
            CANDIDATE_PUBLISHED,
            f"candidate {candidate.id} ({candidate.strategy} {candidate.signal} {candidate.symbol} "
            f"{candidate.interval} at {candidate.open_time.isoformat()}) published to {topic} at offset {offset}",
            **candidate_ids(candidate),
            topic=topic,
            offset=offset,
        )


def build_candidate_assets(
    interval: str,
    features_asset: dg.AssetsDefinition,
    partitions_def: dg.MultiPartitionsDefinition,
    settings: Settings,
) -> dg.AssetsDefinition:
    strategies = build_strategies(settings.config.strategies, interval)
    events = settings.config.events
    max_age = dt.timedelta(seconds=events.publish_max_age_seconds)
    names = ", ".join(s.name for s in strategies) or "none"
    # What detection reads: the stored features of the day and the days its rules look back at,
    # and (only if a strategy needs an unstored recursive series) the OHLCV look-back the features read.
    deps = [dg.AssetDep(features_asset, partition_mapping=trailing_days(feature_days_before(strategies, interval)))]
    if needs_candles(strategies):
        deps += [
            dg.AssetDep(key, partition_mapping=trailing_days(lookback_days(interval)))
            for key in features_asset.dependency_keys
        ]

    @dg.asset(
        name=f"candidates_{interval}",
        group_name=CANDIDATES_GROUP,
        partitions_def=partitions_def,
        backfill_policy=market_backfill_policy(settings),
        deps=deps,
        automation_condition=REBUILD_AFTER_INPUT_REPAIR,
        pool=CLICKHOUSE_POOL,
        op_tags=CANDLE_TO_CANDIDATE_OP_TAGS,
        kinds={"polars", "clickhouse", "kafka"},
        description=(
            f"Signals of the enabled strategies ({names}) on closed {interval} candles: recorded in ClickHouse "
            f"`candidates` and published to Kafka `{events.candidates_topic}` (key = symbol, JSON with a schema "
            f"version, deterministic id). Candles that closed more than {events.publish_max_age_seconds} s "
            "before the run are recorded but not published."
        ),
    )
    def candidates(
        context: dg.AssetExecutionContext,
        object_store: ObjectStoreResource,
        clickhouse: ClickHouseResource,
        kafka: KafkaResource,
    ) -> dg.MaterializeResult:
        days_by_symbol = split_partition_keys(partitions_def, list(context.partition_keys))
        store = object_store.get_store()
        now = dt.datetime.now(dt.UTC)
        found = [
            candidate
            for symbol, days in days_by_symbol.items()
            for candidate in detect_candidates(
                store, strategies, interval, symbol, days, settings.config.history_start, detected_at=now
            )
        ]
        plan = plan_publication(found, {}, now, max_age)
        if found:
            with clickhouse.open() as hot_store:
                published = hot_store.published_candidates([c.id for c in found])
                plan = plan_publication(found, published, now, max_age)
                # Recorded before publishing, so a failed publish leaves them visible as unpublished.
                hot_store.write_candidates([*plan.publish, *plan.too_old], {})
                if plan.publish:
                    _publish(context, kafka, events.candidates_topic, plan.publish)
                    sent_at = dt.datetime.now(dt.UTC)
                    hot_store.write_candidates(plan.publish, {c.id: sent_at for c in plan.publish})
        by_strategy: dict[str, int] = {}
        for candidate in found:
            by_strategy[candidate.strategy] = by_strategy.get(candidate.strategy, 0) + 1
        to_publish = {c.id for c in plan.publish}
        for symbol, days in days_by_symbol.items():
            of_symbol = [c for c in found if c.symbol == symbol]
            log_event(
                context.log,
                CANDIDATES_DETECTED,
                f"{symbol} {interval}: {len(of_symbol)} candidate(s) on {len(days)} day(s), "
                f"{sum(c.id in to_publish for c in of_symbol)} to publish",
                symbol=symbol,
                interval=interval,
                days=days,
                open_time=max((c.open_time for c in of_symbol), default=None),
                candidates=len(of_symbol),
            )
        preview = "\n".join(
            f"| {c.symbol} | {c.open_time:%Y-%m-%d %H:%M} | {c.strategy} | {c.signal} | {c.price:g} |"
            for c in found[-PREVIEW_ROWS:]
        )
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": len(found),
                "strategies": dg.MetadataValue.json([s.name for s in strategies]),
                "by_strategy": dg.MetadataValue.json(by_strategy),
                "published": len(plan.publish),
                "already_published": len(plan.already_published),
                "too_old_to_publish": len(plan.too_old),
                "topic": events.candidates_topic,
                "published_ids": dg.MetadataValue.json([c.id for c in plan.publish][:50]),
                "preview": dg.MetadataValue.md(
                    "| symbol | open time | strategy | signal | close |\n|---|---|---|---|---|\n" + preview
                    if found
                    else "no candidates"
                ),
            }
        )

    return candidates
