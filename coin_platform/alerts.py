"""Failed-run alerts: always logged by the caller; sent to Slack and/or e-mail when configured.

Webhook URLs and SMTP passwords are secrets: they never appear in a message or error.
"""

from __future__ import annotations

import smtplib
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

import requests
from pydantic import SecretStr

TIMEOUT_S = 10


class AlertError(RuntimeError):
    """An alert channel failed; the message names the channel, never its secret."""


@dataclass(frozen=True)
class AlertChannels:
    slack_webhook_url: SecretStr | None = None
    email_to: str | None = None
    smtp_url: SecretStr | None = None  # smtp://user:password@host:port (smtps:// for TLS)

    @property
    def configured(self) -> list[str]:
        return [name for name, on in (("slack", self.slack_webhook_url), ("email", self.email_to)) if on]


def send_alert(channels: AlertChannels, subject: str, body: str) -> list[str]:
    """Send to every configured channel; returns the channels used. Raises AlertError naming a failed one."""
    sent = []
    if channels.slack_webhook_url is not None:
        try:
            response = requests.post(
                channels.slack_webhook_url.get_secret_value(), json={"text": f"*{subject}*\n{body}"}, timeout=TIMEOUT_S
            )
        except requests.RequestException as exc:
            raise AlertError(f"Slack webhook unreachable ({type(exc).__name__})") from None
        if response.status_code >= 300:
            raise AlertError(f"Slack webhook answered HTTP {response.status_code}")
        sent.append("slack")
    if channels.email_to:
        if channels.smtp_url is None:
            raise AlertError("ALERT_EMAIL_TO is set but SMTP_URL is not")
        _send_email(channels.smtp_url, channels.email_to, subject, body)
        sent.append("email")
    return sent


def _send_email(smtp_url: SecretStr, to: str, subject: str, body: str) -> None:
    url = urlsplit(smtp_url.get_secret_value())
    if url.scheme not in ("smtp", "smtps") or not url.hostname:
        raise AlertError("SMTP_URL must look like smtp://user:password@host:port")
    message = EmailMessage()
    message["Subject"] = subject
    user = unquote(url.username or "")
    message["From"] = user if "@" in user else f"coin-platform@{url.hostname}"
    message["To"] = to
    message.set_content(body)
    smtp_class = smtplib.SMTP_SSL if url.scheme == "smtps" else smtplib.SMTP
    try:
        with smtp_class(url.hostname, url.port or (465 if url.scheme == "smtps" else 25), timeout=TIMEOUT_S) as smtp:
            if url.username and url.password:
                if url.scheme == "smtp" and smtp.has_extn("starttls"):
                    smtp.starttls()
                smtp.login(unquote(url.username), unquote(url.password))
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        raise AlertError(f"e-mail to {to} via {url.hostname} failed ({type(exc).__name__})") from None
