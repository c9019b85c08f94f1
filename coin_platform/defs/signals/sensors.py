"""`candidate_sensor`: one trade_job run per candidate published on the candidates topic."""

import dagster as dg

from coin_platform.defs.domain import LIVE_PATH_RUN_TAGS
from coin_platform.defs.events import build_topic_sensor
from coin_platform.events.schemas import Candidate
from coin_platform.settings import Settings


def build_candidate_sensor(settings: Settings, trade_job: dg.JobDefinition, trade_op: str) -> dg.SensorDefinition:
    topic = settings.config.events.candidates_topic
    return build_topic_sensor(
        "candidate_sensor",
        topic,
        trade_job,
        trade_op,
        Candidate.from_json,
        lambda c: (
            c.id,
            {"coin/candidate_id": c.id, "coin/symbol": c.symbol, "coin/strategy": c.strategy, **LIVE_PATH_RUN_TAGS},
        ),
        settings,
        f"One trade_job run per candidate on {topic} (run_key = candidate id).",
    )
