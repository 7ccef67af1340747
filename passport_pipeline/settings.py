"""The one place environment variables are read.

Reading them builds plain values; nothing here connects, creates a file or logs. Secrets
(``GEMINI_API_KEY``, ``PASSPORT_KEY_SECRET``, AWS credentials, the alert channels' SMTP
password, Slack webhook URL and token) are never read into these
values: resources receive them as ``EnvVar`` and resolve them when a step runs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parseaddr
from pathlib import Path

IMAGE_MODELS = ("local", "gemini", "gemini-batch")
IMAGE_STORES = ("local", "s3")
# How a run executes its steps: threads of the run process, a process per step, or celery
# workers on any number of machines (execution/ and README "More machines").
EXECUTORS = ("threads", "multiprocess", "celery")
# Threads measured faster, lighter and cheaper than a process per step (bench/RESULTS.md).
DEFAULT_EXECUTOR = "threads"
DEFAULT_CELERY_BACKEND = "rpc://"
DEFAULT_HOME = "~/.passport_pipeline"
DEFAULT_GEMINI_BASE_URL = "https://generativelanguage.googleapis.com"
DEFAULT_GEMINI_MODEL = "gemini-2.5-flash-image"
SMTP_TLS_MODES = {"starttls": 587, "ssl": 465, "none": 25}  # each mode's usual port
DEFAULT_SLACK_API_URL = "https://slack.com/api/"


class SettingsError(ValueError):
    """An environment variable holds a value the pipeline cannot use."""


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


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str
    image_model: str
    image_store: str
    key_secret_in_env: bool
    executor: str
    max_concurrent_steps: int
    step_retry_delay_s: float
    gemini_base_url: str
    gemini_model: str
    gemini_aspect_ratio: str
    gemini_price_per_image_usd: float
    gemini_fallback_to_local: bool
    gemini_connect_timeout_s: float
    gemini_read_timeout_s: float
    gemini_request_deadline_s: float
    max_image_bytes: int
    s3_bucket: str | None
    s3_prefix: str
    public_base_url: str | None
    alerts: AlertSettings = field(default_factory=AlertSettings)
    # Batch mode (PASSPORT_IMAGE_MODEL=gemini-batch): Gemini's Batch API at half the price.
    gemini_batch_price_per_image_usd: float = 0.0195
    gemini_batch_inline_limit_bytes: int = 20_000_000
    batch_poll_interval_s: float = 60.0
    # PASSPORT_MONTH_BUDGET_USD: a month's spend above it alerts (the exporter serves it as
    # passport_month_budget_usd for deploy/prometheus/alerts.yml); None: no budget.
    month_budget_usd: float | None = None
    # celery: the broker's and result backend's URLs may hold passwords, so only whether the
    # backend is set is kept here; the executor and the worker read them as EnvVar.
    celery_backend_in_env: bool = False
    # The pace of paid calls across the deployment (resources/pacing.py).
    gemini_max_requests_per_minute: float | None = None
    gemini_pacing: bool = True
    gemini_start_width: int = 4
    gemini_start_rate: float = 60.0
    # The months that matter: the first partition, and the day of the next month by which a
    # month must be covered (else the overdue-month sensor alerts).
    first_month: str = "2024-01"
    month_due_day: int = 3
    # Automatic resumes of a month halted by Gemini's daily quota (0: never; a person decides).
    quota_resume_days: int = 3

    @property
    def local_store_root(self) -> Path:
        return self.home / "images"

    @property
    def key_secret_file(self) -> Path:
        return self.home / "key_secret"

    @property
    def pending_root(self) -> Path:
        return self.home / "pending"


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ

    def get(name: str, default: str | None = None) -> str | None:
        value = env.get(name, "").strip()
        return value or default

    home = Path(get("PASSPORT_HOME", DEFAULT_HOME)).expanduser().resolve()
    image_model = _choice(
        get("PASSPORT_IMAGE_MODEL", "local"), IMAGE_MODELS, "PASSPORT_IMAGE_MODEL"
    )
    image_store = _choice(
        get("PASSPORT_IMAGE_STORE", "local"), IMAGE_STORES, "PASSPORT_IMAGE_STORE"
    )
    s3_bucket = get("PASSPORT_S3_BUCKET")
    if image_store == "s3" and not s3_bucket:
        raise SettingsError("PASSPORT_IMAGE_STORE=s3 needs PASSPORT_S3_BUCKET")
    key_secret_in_env = get("PASSPORT_KEY_SECRET") is not None
    if image_store == "s3" and not key_secret_in_env:
        # A generated secret lives in one home: a second machine or container would make other
        # keys, find none of the stored covers, and pay for every one of them again.
        raise SettingsError(
            "PASSPORT_IMAGE_STORE=s3 needs PASSPORT_KEY_SECRET: a shared store must use one key "
            "secret everywhere, or each machine would generate its own, find none of the "
            "covers the others stored, and pay for them again"
        )
    executor = _choice(get("PASSPORT_EXECUTOR", DEFAULT_EXECUTOR), EXECUTORS, "PASSPORT_EXECUTOR")
    if executor == "celery":
        _check_celery(get, image_store)
    return Settings(
        home=home,
        database_url=get("PASSPORT_DATABASE_URL") or f"sqlite:///{home / 'app.sqlite3'}",
        image_model=image_model,
        image_store=image_store,
        key_secret_in_env=key_secret_in_env,
        executor=executor,
        max_concurrent_steps=_integer(
            get("PASSPORT_MAX_CONCURRENT_STEPS", "50"), "PASSPORT_MAX_CONCURRENT_STEPS"
        ),
        step_retry_delay_s=_number(
            get("PASSPORT_STEP_RETRY_DELAY_S", "10"), "PASSPORT_STEP_RETRY_DELAY_S"
        ),
        gemini_base_url=get("GEMINI_BASE_URL", DEFAULT_GEMINI_BASE_URL).rstrip("/"),
        gemini_model=get("GEMINI_MODEL", DEFAULT_GEMINI_MODEL),
        gemini_aspect_ratio=_aspect_ratio(get("GEMINI_ASPECT_RATIO", "3:4")),
        gemini_price_per_image_usd=_number(
            get("GEMINI_PRICE_PER_IMAGE_USD", "0.039"), "GEMINI_PRICE_PER_IMAGE_USD"
        ),
        gemini_fallback_to_local=_flag(
            get("PASSPORT_FALLBACK_TO_LOCAL", "false"), "PASSPORT_FALLBACK_TO_LOCAL"
        ),
        gemini_connect_timeout_s=_seconds(
            get("GEMINI_CONNECT_TIMEOUT_S", "10"), "GEMINI_CONNECT_TIMEOUT_S"
        ),
        # The model is silent until its image is done: up to about 2 minutes, plus margin.
        gemini_read_timeout_s=_seconds(
            get("GEMINI_READ_TIMEOUT_S", "150"), "GEMINI_READ_TIMEOUT_S"
        ),
        # A whole attempt: 2 minutes of generation, queueing, and up to 27 MB of base64.
        gemini_request_deadline_s=_seconds(
            get("GEMINI_REQUEST_DEADLINE_S", "180"), "GEMINI_REQUEST_DEADLINE_S"
        ),
        max_image_bytes=_integer(
            get("PASSPORT_MAX_IMAGE_BYTES", "20000000"), "PASSPORT_MAX_IMAGE_BYTES"
        ),
        s3_bucket=s3_bucket,
        s3_prefix=(get("PASSPORT_S3_PREFIX", "") or "").strip("/"),
        public_base_url=(get("PASSPORT_PUBLIC_BASE_URL") or "").rstrip("/") or None,
        alerts=_alert_settings(get),
        gemini_batch_price_per_image_usd=_number(
            get("GEMINI_BATCH_PRICE_PER_IMAGE_USD", "0.0195"), "GEMINI_BATCH_PRICE_PER_IMAGE_USD"
        ),
        month_budget_usd=_budget(get("PASSPORT_MONTH_BUDGET_USD")),
        # The Batch API guide: inline requests while "the total request size [is] under 20MB".
        gemini_batch_inline_limit_bytes=_integer(
            get("GEMINI_BATCH_INLINE_LIMIT_BYTES", "20000000"), "GEMINI_BATCH_INLINE_LIMIT_BYTES"
        ),
        batch_poll_interval_s=_seconds(
            get("PASSPORT_BATCH_POLL_INTERVAL_S", "60"), "PASSPORT_BATCH_POLL_INTERVAL_S"
        ),
        celery_backend_in_env=get("PASSPORT_CELERY_BACKEND") is not None,
        gemini_max_requests_per_minute=_positive_or_none(
            get("GEMINI_MAX_REQUESTS_PER_MINUTE"), "GEMINI_MAX_REQUESTS_PER_MINUTE"
        ),
        gemini_pacing=_flag(get("GEMINI_PACING", "true"), "GEMINI_PACING"),
        gemini_start_width=max(1, _integer(get("GEMINI_START_WIDTH", "4"), "GEMINI_START_WIDTH")),
        gemini_start_rate=_positive_or_none(get("GEMINI_START_RATE", "60"), "GEMINI_START_RATE")
        or 60.0,
        first_month=_month(get("PASSPORT_FIRST_MONTH", "2024-01"), "PASSPORT_FIRST_MONTH"),
        month_due_day=_due_day(get("PASSPORT_MONTH_DUE_DAY", "3")),
        quota_resume_days=_resume_days(get("PASSPORT_QUOTA_RESUME_DAYS", "3")),
    )


# The shapes Gemini draws (resources/image_model.py AspectRatio).
ASPECT_RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")


def _aspect_ratio(value: str) -> str:
    if value not in ASPECT_RATIOS:
        raise SettingsError(f"GEMINI_ASPECT_RATIO={value!r}: one of {', '.join(ASPECT_RATIOS)}")
    return value


def _check_celery(get: Callable[..., str | None], image_store: str) -> None:
    """Steps on Celery run on any worker machine: everything they share must be shared."""
    if get("PASSPORT_CELERY_BROKER") is None:
        raise SettingsError(
            "PASSPORT_EXECUTOR=celery needs PASSPORT_CELERY_BROKER, the broker every worker "
            "listens to, e.g. pyamqp://user:password@rabbitmq.internal:5672//"
        )
    if image_store != "s3":
        raise SettingsError(
            "PASSPORT_EXECUTOR=celery needs PASSPORT_IMAGE_STORE=s3: a cover stored in one "
            "worker's local folder is invisible to the other machines"
        )
    if get("PASSPORT_DATABASE_URL") is None:
        raise SettingsError(
            "PASSPORT_EXECUTOR=celery needs PASSPORT_DATABASE_URL: the embedded sqlite app "
            "database is one file on one machine, and every worker must link the same passports"
        )


def celery_urls(environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    """The Celery broker and result backend, for the worker's Celery app (secrets: never kept
    in ``Settings``, never logged)."""
    env = os.environ if environ is None else environ
    broker = env.get("PASSPORT_CELERY_BROKER", "").strip()
    if not broker:
        raise SettingsError("a Celery worker needs PASSPORT_CELERY_BROKER")
    return broker, env.get("PASSPORT_CELERY_BACKEND", "").strip() or DEFAULT_CELERY_BACKEND


_EMAIL_VARIABLES = [
    f"PASSPORT_ALERT_{name}"
    for name in ("SMTP_PORT", "SMTP_TLS", "SMTP_USER", "SMTP_PASSWORD", "EMAIL_FROM", "EMAIL_TO")
]


def _alert_settings(get: Callable[..., str | None]) -> AlertSettings:
    host = get("PASSPORT_ALERT_SMTP_HOST")
    if host is None:
        for name in _EMAIL_VARIABLES:
            if get(name) is not None:
                raise SettingsError(
                    f"{name} is set but PASSPORT_ALERT_SMTP_HOST is not: email alerts stay off "
                    "without a mail server; set PASSPORT_ALERT_SMTP_HOST or unset " + name
                )
    tls = _choice(
        get("PASSPORT_ALERT_SMTP_TLS", "starttls"), tuple(SMTP_TLS_MODES), "PASSPORT_ALERT_SMTP_TLS"
    )
    port = _integer(
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
        slack_api_url=_http_url(
            get("PASSPORT_ALERT_SLACK_API_URL", DEFAULT_SLACK_API_URL),
            "PASSPORT_ALERT_SLACK_API_URL",
        ),
        timeout_s=_seconds(get("PASSPORT_ALERT_TIMEOUT_S", "10"), "PASSPORT_ALERT_TIMEOUT_S"),
        ui_url=_http_url(get("PASSPORT_UI_URL"), "PASSPORT_UI_URL"),
    )


def _http_url(value: str | None, name: str) -> str | None:
    if value is not None and not value.startswith(("https://", "http://")):
        raise SettingsError(f"{name}={value!r} is not an http(s) URL")
    return value


def _choice(value: str, allowed: tuple[str, ...], name: str) -> str:
    if value.lower() not in allowed:
        raise SettingsError(f"{name}={value!r} is not one of: {', '.join(allowed)}")
    return value.lower()


def _month(value: str, name: str) -> str:
    from passport_pipeline.domain.months import InvalidMonthError, Month

    try:
        month = Month.parse(value)
    except InvalidMonthError as error:
        raise SettingsError(f"{name}: {error}") from None
    return month.key


def _due_day(value: str) -> int:
    day = _integer(value, "PASSPORT_MONTH_DUE_DAY")
    if not 1 <= day <= 28:
        raise SettingsError(f"PASSPORT_MONTH_DUE_DAY={day}: a day of the month from 1 to 28")
    return day


def _resume_days(value: str) -> int:
    name = "PASSPORT_QUOTA_RESUME_DAYS"
    try:
        days = int(value)
    except ValueError:
        raise SettingsError(
            f"{name}={value!r} is not a whole number of automatic resumes a month"
        ) from None
    if not 0 <= days <= 31:
        raise SettingsError(f"{name} must be from 0 (never resume by itself) to 31, not {days}")
    return days


def _integer(value: str, name: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise SettingsError(f"{name}={value!r} is not a whole number") from None
    if number < 1:
        raise SettingsError(f"{name} must be at least 1, not {number}")
    return number


def _number(value: str, name: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise SettingsError(f"{name}={value!r} is not a number") from None
    if number < 0:
        raise SettingsError(f"{name} cannot be negative")
    return number


def _budget(value: str | None) -> float | None:
    if value is None or not value.strip():
        return None
    return _number(value.strip(), "PASSPORT_MONTH_BUDGET_USD")


def _positive_or_none(value: str | None, name: str) -> float | None:
    if value is None or not value.strip():
        return None
    number = _number(value, name)
    if number <= 0:
        raise SettingsError(f"{name} must be a positive number of requests a minute, not {value}")
    return number


def _seconds(value: str, name: str) -> float:
    number = _number(value, name)
    if number == 0:
        raise SettingsError(f"{name} must be more than 0 seconds")
    return number


def _flag(value: str, name: str) -> bool:
    lowered = value.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name}={value!r} is not true or false")
