"""The trading domain: inference_job (the `decisions` asset), order_job (`orders`, `positions`), the
reconcile job and its schedule, and the sensor that turns each published decision into an order_job run."""

from collections.abc import Sequence
from dataclasses import dataclass

import dagster as dg

from coin_platform.defs.trading.inference import SCORE_OP, build_inference_job
from coin_platform.defs.trading.orders import build_order_job, build_reconcile_job
from coin_platform.defs.trading.sensors import build_decision_sensor
from coin_platform.settings import Settings


@dataclass(frozen=True)
class Trading:
    defs: dg.Definitions
    # The target of the signals domain's candidate sensor, and the op its run config addresses.
    inference_job: dg.JobDefinition
    score_op: str = SCORE_OP


def build_defs(settings: Settings, candidates: Sequence[dg.AssetsDefinition]) -> Trading:
    inference_job, decisions = build_inference_job(settings, candidates)
    order_job, order_specs = build_order_job(settings)
    reconcile_job, reconcile_schedule = build_reconcile_job()
    defs = dg.Definitions(
        assets=[decisions, *order_specs],
        jobs=[inference_job, order_job, reconcile_job],
        schedules=[reconcile_schedule],
        sensors=[build_decision_sensor(settings, order_job)],
    )
    return Trading(defs, inference_job)
