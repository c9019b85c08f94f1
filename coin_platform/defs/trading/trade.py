"""`trade_job`: one run per candidate (the candidate sensor launches it with run_key = candidate id) that
decides and, for buy/sell, orders.

The decision comes from the newest promoted model (`ml.scorers.inference_scorer`: loaded once per process
and version), or from the rule scorer, saying why in the log and in the decision's model_version
(`rule:no-promoted-model`, `rule:model-refused`), when none is promoted or its file is refused. It scores
the features the candidate carries, which are the stored features of its candle (the candidates asset
attaches them), so the run opens no hot store and waits for no `clickhouse` pool slot.

Order of work, each step recorded before the next: the decision in the trading store; a buy/sell decision
published to `events.decisions_topic` (audit and other consumers) and marked published; then its order
(`orders.place_order`). A rerun of the same candidate reuses the recorded decision, publishes it at most
once and finds the order already handled (its client order id is the decision id).
"""

import datetime as dt

import dagster as dg

from coin_platform.defs.events import MessageConfig
from coin_platform.defs.resources import BinanceResource, KafkaResource, ObjectStoreResource, TradingDesk
from coin_platform.defs.trading.assets import DECISIONS_ASSET
from coin_platform.defs.trading.orders import place_order
from coin_platform.events.kafka import publish
from coin_platform.events.schemas import Candidate, Decision, decision_id
from coin_platform.events.trace_ids import decision_ids
from coin_platform.ml.scorers import inference_scorer
from coin_platform.ops.logs import DECISION_PUBLISHED, DECISION_RECORDED, log_event
from coin_platform.settings import Settings

TRADE_OP = "trade_candidate"


def _decisions_materialization(decision: Decision, published: bool, rerun: bool) -> dg.AssetMaterialization:
    return dg.AssetMaterialization(
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
            "inputs": dg.MetadataValue.json(decision.inputs),
            "published": published,
            "recorded_by": "an earlier run (rerun)" if rerun else "this run",
        },
    )


def build_trade_job(settings: Settings) -> dg.JobDefinition:
    events = settings.config.events

    @dg.op(name=TRADE_OP)
    def trade_candidate(
        context: dg.OpExecutionContext,
        config: MessageConfig,
        trading_store: dg.ResourceParam[TradingDesk],
        binance: BinanceResource,
        kafka: KafkaResource,
        object_store: ObjectStoreResource,
    ) -> None:
        candidate = Candidate.from_json(config.message.encode())
        store = trading_store.get_store()
        with store.transaction() as tx:
            stored = tx.decision(decision_id(candidate.id))
        if stored is not None:
            decision, published_at = stored
        else:
            choice = inference_scorer(object_store.get_store(), settings.config)
            if choice.fallback_reason is not None:
                context.log.warning(f"deciding with the rule scorer: {choice.fallback_reason}")
            decision = choice.scorer.decide(candidate, candidate.features, dt.datetime.now(dt.UTC))
            published_at = None
            with store.transaction() as tx:
                tx.record_decision(decision)
            log_event(
                context.log,
                DECISION_RECORDED,
                f"decision {decision.id}: {decision.action} {decision.symbol} (confidence {decision.confidence:.2f}, "
                f"{decision.model_version})",
                **decision_ids(decision),
                confidence=decision.confidence,
                model_version=decision.model_version,
                decided_at=decision.decided_at,
            )
        if decision.action != "hold" and published_at is None:
            kafka.ensure_topics([events.decisions_topic])
            with kafka.producer() as producer:
                (offset,) = publish(producer, events.decisions_topic, [(decision.symbol.encode(), decision.to_json())])
            published_at = dt.datetime.now(dt.UTC)
            with store.transaction() as tx:
                tx.record_published(decision.id, published_at)
            log_event(
                context.log,
                DECISION_PUBLISHED,
                f"decision {decision.id} published to {events.decisions_topic} at offset {offset}",
                **decision_ids(decision),
                topic=events.decisions_topic,
                offset=offset,
            )
        context.log_event(_decisions_materialization(decision, published_at is not None, stored is not None))
        if decision.action != "hold":
            place_order(context, decision, settings, trading_store, binance)

    @dg.job(
        name="trade_job",
        description="Score one candidate, record the decision, publish a buy/sell one and place its order.",
        executor_def=dg.in_process_executor,
        tags={"coin/live": "trade"},
    )
    def trade_job() -> None:
        trade_candidate()

    return trade_job
