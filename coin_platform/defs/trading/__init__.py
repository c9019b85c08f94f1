"""The trading domain: trade_job (one run per candidate: the `decisions`, `orders` and `positions` assets),
order_job (a decision made elsewhere), and the reconcile job and its schedule."""

from collections.abc import Sequence
from dataclasses import dataclass

import dagster as dg

from coin_platform.defs.trading.assets import trading_specs
from coin_platform.defs.trading.orders import build_order_job, build_reconcile_job
from coin_platform.defs.trading.trade import TRADE_OP, build_trade_job
from coin_platform.settings import Settings


@dataclass(frozen=True)
class Trading:
    defs: dg.Definitions
    # The target of the signals domain's candidate sensor, and the op its run config addresses.
    trade_job: dg.JobDefinition
    trade_op: str = TRADE_OP


def build_defs(settings: Settings, candidates: Sequence[dg.AssetsDefinition]) -> Trading:
    trade_job = build_trade_job(settings)
    reconcile_job, reconcile_schedule = build_reconcile_job()
    defs = dg.Definitions(
        assets=trading_specs(settings, candidates),
        jobs=[trade_job, build_order_job(settings), reconcile_job],
        schedules=[reconcile_schedule],
    )
    return Trading(defs, trade_job)
