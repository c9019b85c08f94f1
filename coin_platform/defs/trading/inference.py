"""`inference_job`: one run per candidate (the candidate sensor launches it with run_key = candidate id).

Scores the candidate with the newest promoted model (`ml.scorers.inference_scorer`: loaded once per
process and version), or with the rule scorer, saying why in the log and in the decision's
model_version (`rule:no-promoted-model`, `rule:model-refused`), when none is promoted or its file is
refused. It scores with the candle's features
from the hot store, or those the candidate carried when the hot store no longer has
them; records the decision in ClickHouse `decisions` and publishes buy/sell decisions
to `events.decisions_topic`. A rerun of the same candidate reuses the stored decision
and publishes it at most once.
"""

import datetime as dt
from collections.abc import Sequence

import dagster as dg

from coin_platform.defs.events import MessageConfig
from coin_platform.defs.resources import CLICKHOUSE_POOL, ClickHouseResource, KafkaResource, ObjectStoreResource
from coin_platform.events.kafka import publish
from coin_platform.events.schemas import Candidate, decision_id
from coin_platform.ml.scorers import inference_scorer
from coin_platform.settings import Settings

DECISIONS_ASSET = dg.AssetKey("decisions")
SCORE_OP = "score_candidate"


def build_inference_job(
    settings: Settings, candidates: Sequence[dg.AssetsDefinition]
) -> tuple[dg.JobDefinition, dg.AssetSpec]:
    """inference_job and the `decisions` asset, downstream of the candidates_{interval} it scores."""
    events = settings.config.events
    decisions = dg.AssetSpec(
        DECISIONS_ASSET,
        group_name="trading",
        # The candidates it scores reach it through Kafka, one run per message; the lineage is real.
        deps=[c.key for c in candidates],
        kinds={"clickhouse", "kafka"},
        description=(
            "Decisions (buy / sell / hold, confidence, model version, inputs) of inference_job runs, in "
            f"ClickHouse `decisions`; buy/sell ones are published to Kafka `{events.decisions_topic}`."
        ),
    )

    @dg.op(name=SCORE_OP, pool=CLICKHOUSE_POOL)
    def score_candidate(
        context: dg.OpExecutionContext,
        config: MessageConfig,
        clickhouse: ClickHouseResource,
        kafka: KafkaResource,
        object_store: ObjectStoreResource,
    ) -> None:
        candidate = Candidate.from_json(config.message.encode())
        with clickhouse.open() as hot_store:
            stored = hot_store.read_decision(decision_id(candidate.id))
            if stored is not None:
                decision, published_at = stored
                source = "stored decision (rerun)"
            else:
                hot = hot_store.features_at(candidate.interval, candidate.symbol, candidate.open_time)
                source = "hot store" if hot is not None else "candidate message"
                features = hot if hot is not None else candidate.features
                choice = inference_scorer(object_store.get_store(), settings.config)
                if choice.fallback_reason is not None:
                    context.log.warning(f"deciding with the rule scorer: {choice.fallback_reason}")
                decision = choice.scorer.decide(candidate, features, dt.datetime.now(dt.UTC))
                published_at = None
                hot_store.write_decision(decision, None)
            if decision.action != "hold" and published_at is None:
                kafka.ensure_topics([events.decisions_topic])
                with kafka.producer() as producer:
                    message = (decision.symbol.encode(), decision.to_json())
                    (offset,) = publish(producer, events.decisions_topic, [message])
                published_at = dt.datetime.now(dt.UTC)
                hot_store.write_decision(decision, published_at)
                context.log.info(f"decision {decision.id} published to {events.decisions_topic} at offset {offset}")
        context.log_event(
            dg.AssetMaterialization(
                DECISIONS_ASSET,
                description=f"{decision.action} {decision.symbol} ({decision.strategy} {decision.signal})",
                metadata={
                    "decision_id": decision.id,
                    "candidate_id": decision.candidate_id,
                    "symbol": decision.symbol,
                    "interval": decision.interval,
                    "strategy": decision.strategy,
                    "signal": decision.signal,
                    "action": decision.action,
                    "confidence": decision.confidence,
                    "model_version": decision.model_version,
                    "features_from": source,
                    "inputs": dg.MetadataValue.json(decision.inputs),
                    "published": published_at is not None,
                },
            )
        )

    @dg.job(
        name="inference_job",
        description="Score one candidate and record (and for buy/sell publish) the decision.",
        executor_def=dg.in_process_executor,
    )
    def inference_job() -> None:
        score_candidate()

    return inference_job, decisions
