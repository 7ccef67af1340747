"""Where alerts go: a person's mailbox (SMTP) and a Slack channel (dagster-slack).

Each channel is a resource that is off unless configured (``enabled``). ``send`` tries a few
times when the failure may pass (a refused connection, a timeout, an SMTP 4xx, an HTTP 429 or
5xx), each attempt bounded by ``timeout_s``, and raises ``AlertDeliveryError`` when it gives up.
The error says what failed without the secrets (SMTP password, webhook URL, token).
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from dagster import ConfigurableResource
from dagster_slack import SlackResource
from pydantic import Field
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookClient
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from passport_pipeline.domain.alert_message import AlertMessage


class AlertDeliveryError(Exception):
    """A channel could not deliver an alert after its attempts."""


class AlertChannel(ConfigurableResource):
    """A way to reach a person; does nothing until configured."""

    timeout_s: float = Field(default=10.0, description="Bound on each connection and answer.")
    attempts: int = Field(default=3, description="Attempts when a failure may pass.")

    @property
    def enabled(self) -> bool:
        raise NotImplementedError

    def send(self, alert: AlertMessage) -> None:
        raise NotImplementedError

    def _deliver(self, channel: str, attempt: Callable[[], None], transient) -> None:
        try:
            for retrying in Retrying(
                stop=stop_after_attempt(self.attempts),
                wait=wait_exponential(multiplier=0.5, max=4),
                retry=retry_if_exception(transient),
                reraise=True,
            ):
                with retrying:
                    attempt()
        except Exception as error:
            # ``from None``: a chained urllib error could carry the webhook URL, a secret.
            raise AlertDeliveryError(f"{channel}: {type(error).__name__}: {error}") from None


class EmailAlerts(AlertChannel):
    """Alerts by email over SMTP (smtplib): STARTTLS, implicit TLS or none; a login if a user
    is set. Off while ``host`` is unset."""

    host: str | None = None
    port: int = 587
    tls: str = Field(default="starttls", description="starttls, ssl or none")
    user: str | None = None
    password: str | None = Field(default=None, description="From the environment (EnvVar).")
    sender: str | None = None
    recipients: list[str] = Field(default_factory=list)

    @property
    def enabled(self) -> bool:
        return self.host is not None

    def send(self, alert: AlertMessage) -> None:
        message = EmailMessage()
        message["Subject"] = alert.subject
        message["From"] = self.sender or ""
        message["To"] = ", ".join(self.recipients)
        message["Date"] = formatdate()
        message["Message-ID"] = make_msgid(domain="passport-pipeline")
        message.set_content(alert.text)
        self._deliver("email", lambda: self._send_once(message), _smtp_may_pass)

    def _send_once(self, message: EmailMessage) -> None:
        context = ssl.create_default_context()
        if self.tls == "ssl":
            smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout_s, context=context)
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout_s)
        with smtp:
            if self.tls == "starttls":
                smtp.starttls(context=context)
            if self.user:
                smtp.login(self.user, self.password or "")
            smtp.send_message(message)


def _smtp_may_pass(error: BaseException) -> bool:
    if isinstance(error, smtplib.SMTPResponseException):
        return 400 <= error.smtp_code < 500
    if isinstance(error, smtplib.SMTPServerDisconnected):
        return True
    if isinstance(error, (smtplib.SMTPException, ssl.SSLCertVerificationError)):
        return False
    return isinstance(error, OSError)  # refused, reset, unreachable, timed out


class SlackAlerts(AlertChannel):
    """Alerts to Slack: an incoming webhook (slack_sdk's WebhookClient), or a bot token and a
    channel through dagster-slack's ``SlackResource``. Off while neither is set."""

    webhook_url: str | None = Field(default=None, description="From the environment (EnvVar).")
    token: str | None = Field(default=None, description="From the environment (EnvVar).")
    channel: str | None = None
    api_url: str = Field(default="https://slack.com/api/", description="Slack's Web API base.")

    @property
    def enabled(self) -> bool:
        return bool(self.webhook_url or self.token)

    def send(self, alert: AlertMessage) -> None:
        if self.webhook_url:
            self._deliver("slack", lambda: self._post_webhook(alert.slack_text), _http_may_pass)
            return
        client = SlackResource(token=self.token or "").get_client()
        # dagster-slack's client takes only the token; its base URL, timeout and retries are
        # slack_sdk's public attributes. Retries are tenacity's alone.
        client.base_url = self.api_url.rstrip("/") + "/"
        client.timeout = self.timeout_s
        client.retry_handlers = []
        self._deliver(
            "slack",
            lambda: client.chat_postMessage(channel=self.channel, text=alert.slack_text),
            _http_may_pass,
        )

    def _post_webhook(self, text: str) -> None:
        client = WebhookClient(self.webhook_url, timeout=self.timeout_s, retry_handlers=[])
        response = client.send(text=text)
        if response.status_code != 200:
            raise SlackWebhookError(response.status_code, response.body)


class SlackWebhookError(Exception):
    def __init__(self, status: int, body: str):
        super().__init__(f"the webhook answered HTTP {status}: {body[:200]}")
        self.status = status


def _http_may_pass(error: BaseException) -> bool:
    if isinstance(error, SlackWebhookError):
        return error.status == 429 or error.status >= 500
    if isinstance(error, SlackApiError):
        status = error.response.status_code
        return status == 429 or status >= 500
    return isinstance(error, OSError)  # refused, reset, timed out (urllib's errors are OSErrors)
