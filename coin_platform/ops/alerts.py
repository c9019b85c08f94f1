"""Failed-run alerts: always logged by the caller; sent to Slack and/or e-mail when configured.

Webhook URLs and SMTP passwords are secrets: they never appear in a message or error.
"""

from __future__ import annotations

import smtplib
from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class SmtpServer:
    """Where e-mail alerts go, parsed from SMTP_URL; the credentials never show in a repr."""

    tls: bool  # smtps:// (TLS from the start); smtp:// upgrades with STARTTLS when offered
    host: str
    port: int
    user: str = field(default="", repr=False)
    password: str = field(default="", repr=False)


def parse_smtp_url(value: str) -> SmtpServer:
    """smtp[s]://user:password@host[:port], user and password percent-encoded.

    Raises ValueError saying what is wrong and never quoting the URL: it holds a password.
    """
    if not all("!" <= char <= "~" for char in value):
        raise ValueError("contains whitespace, a control or a non-ASCII character (percent-encode it)")
    encode = "percent-encode '/', '?', '#' and '@' in the user name and password"
    try:
        url = urlsplit(value)
        port = url.port
    except ValueError:  # its text quotes the URL: raise ours below, outside this handler
        url = None
    if url is None:
        if "[" in value or "]" in value:
            raise ValueError(f"is not a URL (unbalanced '[' or ']'; {encode})")
        raise ValueError(f"the port is not a number from 1 to 65535 ({encode})")
    if url.scheme not in ("smtp", "smtps"):
        raise ValueError("must start with smtp:// or smtps://")
    if url.path not in ("", "/") or url.query or url.fragment:
        raise ValueError(f"has a path, query or fragment after the host ({encode})")
    if not url.hostname:
        raise ValueError("has no host")
    if port == 0:
        raise ValueError(f"the port is not a number from 1 to 65535 ({encode})")
    tls = url.scheme == "smtps"
    return SmtpServer(
        tls=tls,
        host=url.hostname,
        port=port or (465 if tls else 25),
        user=unquote(url.username or ""),
        password=unquote(url.password or ""),
    )


def _send_email(smtp_url: SecretStr, to: str, subject: str, body: str) -> None:
    try:
        server = parse_smtp_url(smtp_url.get_secret_value())
    except ValueError as exc:
        raise AlertError(f"SMTP_URL: {exc}") from None
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = server.user if "@" in server.user else f"coin-platform@{server.host}"
    message["To"] = to
    message.set_content(body)
    smtp_class = smtplib.SMTP_SSL if server.tls else smtplib.SMTP
    try:
        with smtp_class(server.host, server.port, timeout=TIMEOUT_S) as smtp:
            if server.user and server.password:
                if not server.tls and smtp.has_extn("starttls"):
                    smtp.starttls()
                smtp.login(server.user, server.password)
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        raise AlertError(f"e-mail to {to} via {server.host} failed ({type(exc).__name__})") from None
