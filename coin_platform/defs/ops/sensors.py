"""The failed-run alert: every failed run of the code location is logged and, when configured, sent."""

import dagster as dg

from coin_platform.ops.alerts import AlertChannels, AlertError, send_alert
from coin_platform.settings import Settings


def build_failure_alert_sensor(settings: Settings) -> dg.SensorDefinition:
    channels = AlertChannels(
        slack_webhook_url=settings.alert_slack_webhook_url,
        email_to=settings.alert_email_to,
        smtp_url=settings.smtp_url,
    )

    @dg.run_failure_sensor(
        name="run_failure_alert_sensor",
        default_status=dg.DefaultSensorStatus.RUNNING,
        monitor_all_code_locations=False,
        description="Reports every failed run: in the daemon log, and to Slack / e-mail when configured "
        "(ALERT_SLACK_WEBHOOK_URL, ALERT_EMAIL_TO + SMTP_URL).",
    )
    def run_failure_alert(context: dg.RunFailureSensorContext) -> None:
        run = context.dagster_run
        subject = f"coin_platform: run {run.run_id[:8]} of {run.job_name} failed"
        body = f"{context.failure_event.message or 'failed'}\nrun id: {run.run_id}\ntags: {dict(run.tags)}"
        context.log.error(f"{subject}: {body}")
        if not channels.configured:
            return
        try:
            sent = send_alert(channels, subject, body)
            context.log.info(f"alert sent via {', '.join(sent)}")
        except AlertError as exc:
            context.log.error(f"alert not sent: {exc}")

    return run_failure_alert
