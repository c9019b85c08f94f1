"""Freshness of the live edge: a freshness check per live asset, the sensor that evaluates them, and the alert.

Dagster's last-update freshness checks (`build_last_update_freshness_checks`): the live assets are partitioned
UTC day × symbol, and the live schedule materializes today's partitions every interval, so "the newest
materialization of any partition is older than the limit" is exactly a stalled live edge. The time-partition
checks (`build_time_partition_freshness_checks`) ask whether a whole day partition exists by a deadline, which
cannot see an edge minutes behind; `FreshnessPolicy` on the assets is evaluated by a daemon whose state nothing
in open-source Dagster alerts on, while a check's failure is an evaluation a sensor can read. The limit of an
interval is health.stale_after(interval) (config.yaml `health:`).

`build_sensor_for_freshness_checks` evaluates a check when it may have gone stale (its last evaluation passed
and the limit since the asset's update has run out) or when a failed one's asset was updated again, as a run of
the checks only; the live ingest runs do not carry them, so they add nothing to the live path. The alert sensor
reads each check's newest evaluation and alerts once when it turns from passing to failing (the cursor keeps
each check's last state), through the same channels as the failed-run alert.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import Iterator, Mapping, Sequence

import dagster as dg

from coin_platform.ops.alerts import AlertChannels, AlertError, send_alert
from coin_platform.settings import Settings

FRESHNESS_SENSOR = "freshness_checks_sensor"
FRESHNESS_ALERT_SENSOR = "freshness_alert_sensor"
# The name Dagster's freshness check factories give every check they build.
FRESHNESS_CHECK_NAME = "freshness_check"


def freshness_check_keys(assets: Sequence[dg.AssetKey]) -> list[dg.AssetCheckKey]:
    """The keys of the freshness checks of `assets` (to leave them out of a job)."""
    return [dg.AssetCheckKey(key, FRESHNESS_CHECK_NAME) for key in assets]


def build_freshness_checks(
    settings: Settings, live_assets: Mapping[str, Sequence[dg.AssetKey]]
) -> list[dg.AssetChecksDefinition]:
    """One last-update freshness check per live asset, `live_assets` grouped by interval, each with its limit."""
    checks: list[dg.AssetChecksDefinition] = []
    with _chosen_over_freshness_policy():
        for interval, keys in live_assets.items():
            checks += dg.build_last_update_freshness_checks(
                assets=list(keys), lower_bound_delta=settings.config.health.stale_after(interval)
            )
    return checks


@contextlib.contextmanager
def _chosen_over_freshness_policy() -> Iterator[None]:
    """Dagster calls these factories superseded by FreshnessPolicy; the module docstring says why they are used."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.SupersessionWarning)
        yield


def build_freshness_sensor(settings: Settings, checks: Sequence[dg.AssetChecksDefinition]) -> dg.SensorDefinition:
    with _chosen_over_freshness_policy():
        return dg.build_sensor_for_freshness_checks(
            freshness_checks=checks,
            name=FRESHNESS_SENSOR,
            minimum_interval_seconds=settings.config.health.freshness_sensor_interval_seconds,
            default_status=dg.DefaultSensorStatus.RUNNING,
        )


def build_freshness_alert_sensor(settings: Settings, checks: Sequence[dg.AssetChecksDefinition]) -> dg.SensorDefinition:
    channels = AlertChannels(
        slack_webhook_url=settings.alert_slack_webhook_url,
        email_to=settings.alert_email_to,
        smtp_url=settings.smtp_url,
    )
    check_keys = sorted((key for definition in checks for key in definition.check_keys), key=str)

    @dg.sensor(
        name=FRESHNESS_ALERT_SENSOR,
        minimum_interval_seconds=settings.config.health.freshness_sensor_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Alerts once when a live asset's freshness check turns from passing to failing: in the daemon "
        "log, and to Slack / e-mail when configured (ALERT_SLACK_WEBHOOK_URL, ALERT_EMAIL_TO + SMTP_URL).",
    )
    def freshness_alert(context: dg.SensorEvaluationContext) -> dg.SkipReason:
        seen: dict[str, bool] = json.loads(context.cursor) if context.cursor else {}
        newest = context.instance.event_log_storage.get_asset_check_summary_records(check_keys)
        stale = []
        for key, summary in newest.items():
            record = summary.last_completed_check_execution_record
            evaluation = record.event.asset_check_evaluation if record and record.event else None
            if evaluation is None:
                continue
            name = key.to_user_string()
            if not evaluation.passed and seen.get(name, True):
                stale.append(f"{key.asset_key.to_user_string()}: {evaluation.description}")
            seen[name] = evaluation.passed
        context.update_cursor(json.dumps(seen, sort_keys=True))
        if not stale:
            return dg.SkipReason("no freshness check turned stale")
        subject = f"coin_platform: {len(stale)} live asset(s) stale"
        body = "\n".join(stale)
        context.log.error(f"{subject}: {body}")
        if channels.configured:
            try:
                context.log.info(f"alert sent via {', '.join(send_alert(channels, subject, body))}")
            except AlertError as exc:
                context.log.error(f"alert not sent: {exc}")
        return dg.SkipReason(f"alerted: {subject}")

    return freshness_alert


def build_freshness_defs(settings: Settings, live_assets: Mapping[str, Sequence[dg.AssetKey]]) -> dg.Definitions:
    checks = build_freshness_checks(settings, live_assets)
    return dg.Definitions(
        asset_checks=checks,
        sensors=[build_freshness_sensor(settings, checks), build_freshness_alert_sensor(settings, checks)],
    )
