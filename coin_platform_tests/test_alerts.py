"""Failed-run alerts: a Slack-compatible webhook on loopback receives them; secrets stay out of errors."""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from pydantic import SecretStr

from coin_platform.alerts import AlertChannels, AlertError, send_alert
from coin_platform.stack import free_port


@pytest.fixture
def webhook():
    received: list[dict] = []
    status = {"code": 200}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append({"path": self.path, "body": json.loads(body)})
            self.send_response(status["code"])
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/services/T000/B000/s3cr3t", received, status
    finally:
        server.shutdown()
        server.server_close()


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
