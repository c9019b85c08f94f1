"""`decision_sensor`: one order_job run per decision published on the decisions topic."""

import dagster as dg

from coin_platform.defs.events import build_topic_sensor
from coin_platform.defs.trading.orders import ORDER_OP
from coin_platform.events.schemas import Decision
from coin_platform.settings import Settings


def build_decision_sensor(settings: Settings, order_job: dg.JobDefinition) -> dg.SensorDefinition:
    topic = settings.config.events.decisions_topic
    return build_topic_sensor(
        "decision_sensor",
        topic,
        order_job,
        ORDER_OP,
        Decision.from_json,
        lambda d: (d.id, {"coin/decision_id": d.id, "coin/symbol": d.symbol, "coin/action": d.action}),
        settings,
        f"One order_job run per decision on {topic} (run_key = decision id).",
    )
