"""Where alerts of stopped months go: email (SMTP) and Slack (webhook or token), each off unless
configured whole. The SMTP password, Slack webhook URL and Slack token stay in the environment
(resources get EnvVar)."""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import parseaddr

from passport_pipeline.settings.values import (
    Getter,
    SettingsError,
    choice,
    http_url,
    integer,
    seconds,
)

SMTP_TLS_MODES = {"starttls": 587, "ssl": 465, "none": 25}  # each mode's usual port
DEFAULT_SLACK_API_URL = "https://slack.com/api/"


@dataclass(frozen=True)
class AlertSettings:
    """Where alerts of stopped months go; each channel is off unless configured. The SMTP
    password, Slack webhook URL and Slack token stay in the environment (resources get EnvVar)."""

    smtp_host: str | None = None
    smtp_port: int = SMTP_TLS_MODES["starttls"]
    smtp_tls: str = "starttls"
    smtp_user: str | None = None
    smtp_password_in_env: bool = False
    email_from: str | None = None
    email_to: tuple[str, ...] = ()
    slack_webhook_in_env: bool = False
    slack_token_in_env: bool = False
    slack_channel: str | None = None
    slack_api_url: str = DEFAULT_SLACK_API_URL
    timeout_s: float = 10.0
    ui_url: str | None = None


_EMAIL_VARIABLES = [
    f"PASSPORT_ALERT_{name}"
    for name in ("SMTP_PORT", "SMTP_TLS", "SMTP_USER", "SMTP_PASSWORD", "EMAIL_FROM", "EMAIL_TO")
]


def alert_settings(get: Getter) -> AlertSettings:
    """Where alerts go, each channel checked whole: a half-configured channel is an error."""
    host = get("PASSPORT_ALERT_SMTP_HOST")
    if host is None:
        for name in _EMAIL_VARIABLES:
            if get(name) is not None:
                raise SettingsError(
                    f"{name} is set but PASSPORT_ALERT_SMTP_HOST is not: email alerts stay off "
                    "without a mail server; set PASSPORT_ALERT_SMTP_HOST or unset " + name
                )
    tls = choice(
        get("PASSPORT_ALERT_SMTP_TLS", "starttls"), tuple(SMTP_TLS_MODES), "PASSPORT_ALERT_SMTP_TLS"
    )
    port = integer(
        get("PASSPORT_ALERT_SMTP_PORT", str(SMTP_TLS_MODES[tls])), "PASSPORT_ALERT_SMTP_PORT"
    )
    if port > 65535:
        raise SettingsError(f"PASSPORT_ALERT_SMTP_PORT={port} is not a port (1-65535)")
    user = get("PASSPORT_ALERT_SMTP_USER")
    password_in_env = get("PASSPORT_ALERT_SMTP_PASSWORD") is not None
    if host is not None:
        if (user is None) != (not password_in_env):
            raise SettingsError(
                "PASSPORT_ALERT_SMTP_USER and PASSPORT_ALERT_SMTP_PASSWORD go together: "
                "set both to log in to the mail server, or neither"
            )
        if password_in_env and tls == "none" and host not in ("127.0.0.1", "localhost", "::1"):
            raise SettingsError(
                f"PASSPORT_ALERT_SMTP_TLS=none would send the SMTP password to {host} "
                "unencrypted: use starttls or ssl"
            )
    email_from = get("PASSPORT_ALERT_EMAIL_FROM")
    addresses = (get("PASSPORT_ALERT_EMAIL_TO") or "").split(",")
    email_to = tuple(address.strip() for address in addresses if address.strip())
    if host is not None:
        if not email_to:
            raise SettingsError(
                "PASSPORT_ALERT_SMTP_HOST is set but PASSPORT_ALERT_EMAIL_TO is not: "
                "name who gets the alerts (comma-separated addresses)"
            )
        if email_from is None:
            raise SettingsError(
                "PASSPORT_ALERT_SMTP_HOST is set but PASSPORT_ALERT_EMAIL_FROM is not: "
                "name the sender address the mail server accepts"
            )
        for name, address in [("PASSPORT_ALERT_EMAIL_FROM", email_from)] + [
            ("PASSPORT_ALERT_EMAIL_TO", a) for a in email_to
        ]:
            if "@" not in parseaddr(address)[1]:
                raise SettingsError(f"{name}: {address!r} is not an email address")
    webhook = get("PASSPORT_ALERT_SLACK_WEBHOOK_URL")
    token_in_env = get("PASSPORT_ALERT_SLACK_TOKEN") is not None
    channel = get("PASSPORT_ALERT_SLACK_CHANNEL")
    if webhook is not None and token_in_env:
        raise SettingsError(
            "set PASSPORT_ALERT_SLACK_WEBHOOK_URL or PASSPORT_ALERT_SLACK_TOKEN, not both"
        )
    if webhook is not None and not webhook.startswith(("https://", "http://")):
        # The URL is a secret: the message names the variable, never its value.
        raise SettingsError("PASSPORT_ALERT_SLACK_WEBHOOK_URL is not an http(s) URL")
    if token_in_env and channel is None:
        raise SettingsError(
            "PASSPORT_ALERT_SLACK_TOKEN needs PASSPORT_ALERT_SLACK_CHANNEL (e.g. #passport-ops)"
        )
    if channel is not None and not token_in_env:
        raise SettingsError(
            "PASSPORT_ALERT_SLACK_CHANNEL is set but PASSPORT_ALERT_SLACK_TOKEN is not "
            "(a webhook posts to the channel it was made for)"
        )
    return AlertSettings(
        smtp_host=host,
        smtp_port=port,
        smtp_tls=tls,
        smtp_user=user,
        smtp_password_in_env=password_in_env,
        email_from=email_from,
        email_to=email_to,
        slack_webhook_in_env=webhook is not None,
        slack_token_in_env=token_in_env,
        slack_channel=channel,
        slack_api_url=http_url(
            get("PASSPORT_ALERT_SLACK_API_URL", DEFAULT_SLACK_API_URL),
            "PASSPORT_ALERT_SLACK_API_URL",
        ),
        timeout_s=seconds(get("PASSPORT_ALERT_TIMEOUT_S", "10"), "PASSPORT_ALERT_TIMEOUT_S"),
        ui_url=http_url(get("PASSPORT_UI_URL"), "PASSPORT_UI_URL"),
    )
