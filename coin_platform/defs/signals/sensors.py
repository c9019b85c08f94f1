"""`candidate_sensor`: one inference_job run per candidate published on the candidates topic."""

import dagster as dg

from coin_platform.defs.events import build_topic_sensor
from coin_platform.events.schemas import Candidate
from coin_platform.settings import Settings


def build_candidate_sensor(settings: Settings, inference_job: dg.JobDefinition, score_op: str) -> dg.SensorDefinition:
    topic = settings.config.events.candidates_topic
    return build_topic_sensor(
        "candidate_sensor",
        topic,
        inference_job,
        score_op,
        Candidate.from_json,
        lambda c: (c.id, {"coin/candidate_id": c.id, "coin/symbol": c.symbol, "coin/strategy": c.strategy}),
        settings,
        f"One inference_job run per candidate on {topic} (run_key = candidate id).",
    )
