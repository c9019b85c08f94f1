"""The code location: `coin_platform.definitions:defs` for the active deployment."""

from __future__ import annotations

import warnings

import dagster as dg

from coin_platform.defs.assets.candidates import build_candidate_assets
from coin_platform.defs.assets.features import build_feature_assets
from coin_platform.defs.assets.history import build_history_asset, history_partitions
from coin_platform.defs.assets.hot import build_hot_assets
from coin_platform.defs.assets.market import build_market_assets
from coin_platform.defs.checks import build_ohlcv_checks
from coin_platform.defs.inference import SCORE_OP, build_inference_job
from coin_platform.defs.orders import ORDER_OP, build_order_job, build_reconcile_job
from coin_platform.defs.partitions import market_partitions
from coin_platform.defs.resources import build_resources
from coin_platform.defs.schedules import build_history_schedule, build_live_schedule
from coin_platform.defs.sensors import build_failure_alert_sensor, build_topic_sensor
from coin_platform.events.schemas import Candidate, Decision
from coin_platform.settings import Settings, get_settings

# Deliberate: partitioned asset checks (preview) report per partition, and
# BackfillPolicy (beta) is what makes a backfill a few runs instead of hundreds.
warnings.filterwarnings("ignore", category=dg.PreviewWarning)
warnings.filterwarnings("ignore", category=dg.BetaWarning)


def build_definitions(settings: Settings) -> dg.Definitions:
    partitions_def = market_partitions(settings)
    years_def = history_partitions(settings)
    history_assets: list[dg.AssetsDefinition] = []
    derived_assets: list[dg.AssetsDefinition] = []
    candidate_assets: list[dg.AssetsDefinition] = []
    assets: list[dg.AssetsDefinition] = []
    checks: list[dg.AssetChecksDefinition] = []
    jobs = []
    schedules: list[dg.ScheduleDefinition] = []
    for interval in settings.config.intervals:
        market = build_market_assets(interval, partitions_def, settings)
        ohlcv = market.ohlcv
        hot, hot_check = build_hot_assets(interval, ohlcv, partitions_def, settings)
        features = build_feature_assets(interval, ohlcv, partitions_def, settings)
        candidates = build_candidate_assets(interval, features, partitions_def, settings)
        assets += [market.step, hot, features, candidates]
        derived_assets += [hot, features, candidates]
        candidate_assets.append(candidates)
        checks.append(hot_check)
        compare_with_1m = interval != "1m" and "1m" in settings.config.intervals
        checks.append(build_ohlcv_checks(interval, ohlcv, partitions_def, compare_with_1m))
        job = dg.define_asset_job(
            name=f"ingest_{interval}",
            selection=dg.AssetSelection.assets(market.step, hot, features, candidates),
            executor_def=dg.in_process_executor,
            description=f"Fetch, clean, load into the hot store, compute features of {interval} candles "
            "and detect candidates for a day × symbol range.",
        )
        jobs.append(job)
        schedules.append(build_live_schedule(interval, job, [market.op_name], settings.config.symbols))
        history, history_check = build_history_asset(interval, ohlcv, years_def)
        history_assets.append(history)
        checks.append(history_check)
    history_job = dg.define_asset_job(
        name="compact_history",
        selection=dg.AssetSelection.assets(*history_assets),
        executor_def=dg.in_process_executor,
        description="Compact hourly OHLCV into the yearly history archives.",
    )
    jobs.append(history_job)
    schedules.append(build_history_schedule(history_job, settings.config.symbols))
    assets += history_assets
    inference_job, decisions = build_inference_job(settings, candidate_assets)
    order_job, trading_specs = build_order_job(settings)
    reconcile_job, reconcile_schedule = build_reconcile_job()
    jobs += [inference_job, order_job, reconcile_job]
    schedules.append(reconcile_schedule)
    events = settings.config.events
    candidate_sensor = build_topic_sensor(
        "candidate_sensor",
        events.candidates_topic,
        inference_job,
        SCORE_OP,
        Candidate.from_json,
        lambda c: (c.id, {"coin/candidate_id": c.id, "coin/symbol": c.symbol, "coin/strategy": c.strategy}),
        settings,
        f"One inference_job run per candidate on {events.candidates_topic} (run_key = candidate id).",
    )
    decision_sensor = build_topic_sensor(
        "decision_sensor",
        events.decisions_topic,
        order_job,
        ORDER_OP,
        Decision.from_json,
        lambda d: (d.id, {"coin/decision_id": d.id, "coin/symbol": d.symbol, "coin/action": d.action}),
        settings,
        f"One order_job run per decision on {events.decisions_topic} (run_key = decision id).",
    )
    return dg.Definitions(
        assets=[*assets, decisions, *trading_specs],
        asset_checks=checks,
        jobs=jobs,
        schedules=schedules,
        sensors=[
            dg.AutomationConditionSensorDefinition(
                "repair_automation_sensor",
                target=dg.AssetSelection.assets(*history_assets, *derived_assets),
                default_status=dg.DefaultSensorStatus.RUNNING,
                minimum_interval_seconds=60,
                description="Follows a repaired day downstream: rebuilds a past year's archive after any of its "
                "days is rematerialized, the hot-store day inside the retention, and the existing feature days "
                "whose look-back includes it.",
            ),
            candidate_sensor,
            decision_sensor,
            build_failure_alert_sensor(settings),
        ],
        resources=build_resources(settings),
    )


defs = build_definitions(get_settings())
