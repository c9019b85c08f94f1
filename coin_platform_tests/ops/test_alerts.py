"""Failed-run alerts: a Slack-compatible webhook on loopback receives them; secrets stay out of errors."""

import dagster as dg
import pytest
from pydantic import SecretStr

from coin_platform.definitions import build_definitions
from coin_platform.local.stack import free_port
from coin_platform.ops.alerts import AlertChannels, AlertError, send_alert
from coin_platform.settings import PROJECT_ROOT, load_settings
from coin_platform_tests.leaks import assert_secret_absent


def test_an_alert_reaches_the_webhook(webhook):
    url, received, _ = webhook
    sent = send_alert(AlertChannels(slack_webhook_url=SecretStr(url)), "run abc failed", "order_job: boom")
    assert sent == ["slack"]
    assert received == [{"path": "/services/T000/B000/s3cr3t", "body": {"text": "*run abc failed*\norder_job: boom"}}]


def test_a_failing_channel_is_named_without_its_secret(webhook):
    url, _, status = webhook
    status["code"] = 500
    with pytest.raises(AlertError, match="Slack webhook answered HTTP 500") as error:
        send_alert(AlertChannels(slack_webhook_url=SecretStr(url)), "s", "b")
    assert "s3cr3t" not in str(error.value)
    smtp = SecretStr(f"smtp://alerts:hunter2@127.0.0.1:{free_port()}")
    with pytest.raises(AlertError, match="e-mail to ops@example.com via 127.0.0.1 failed") as error:
        send_alert(AlertChannels(email_to="ops@example.com", smtp_url=smtp), "s", "b")
    assert "hunter2" not in str(error.value)


def test_nothing_is_sent_when_nothing_is_configured():
    assert AlertChannels().configured == []
    assert send_alert(AlertChannels(), "s", "b") == []
    with pytest.raises(AlertError, match="ALERT_EMAIL_TO is set but SMTP_URL is not"):
        send_alert(AlertChannels(email_to="ops@example.com"), "s", "b")


def test_a_failed_run_is_reported_by_the_failure_sensor(webhook, tmp_path):
    url, received, _ = webhook
    settings = load_settings(
        {
            "COIN_CONFIG": str(PROJECT_ROOT / "config.yaml"),
            "COIN_HOME": str(tmp_path),
            "ALERT_SLACK_WEBHOOK_URL": url,
        }
    )
    defs = build_definitions(settings)
    instance = dg.DagsterInstance.ephemeral()
    failed = defs.resolve_job_def("order_job").execute_in_process(
        run_config={"ops": {"execute_decision": {"config": {"message": "{not a decision"}}}},
        instance=instance,
        raise_on_error=False,
    )
    assert not failed.success
    context = dg.build_run_status_sensor_context(
        sensor_name="run_failure_alert_sensor",
        dagster_instance=instance,
        dagster_run=failed.dagster_run,
        dagster_event=failed.get_run_failure_event(),
    ).for_run_failure()
    defs.resolve_sensor_def("run_failure_alert_sensor")(context)
    (alert,) = received
    assert alert["body"]["text"].startswith(f"*coin_platform: run {failed.run_id[:8]} of order_job failed*")
    assert failed.run_id in alert["body"]["text"]


def test_an_smtp_url_with_a_slash_in_its_password_is_named_without_any_part_of_it():
    smtp = SecretStr(f"smtp://alerts:s3cr/et@127.0.0.1:{free_port()}")
    with pytest.raises(AlertError, match="SMTP_URL: the port is not a number .*percent-encode '/'") as error:
        send_alert(AlertChannels(email_to="ops@example.com", smtp_url=smtp), "s", "b")
    assert_secret_absent(error.value, "s3cr", "alerts", "127.0.0.1")
