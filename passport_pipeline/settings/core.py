"""``Settings``, and ``load_settings``: the one place environment variables are read.

Reading them builds plain values; nothing here connects, creates a file or logs. Secrets
(``GEMINI_API_KEY``, ``PASSPORT_KEY_SECRET``, AWS credentials, the alert channels' SMTP
password, Slack webhook URL and token) are never read into these values: resources receive them
as ``EnvVar`` and resolve them when a step runs. Each concept's variables are read by its own
module of this package (gemini, store, executors, alerts); this one assembles them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from passport_pipeline.settings.alerts import AlertSettings, alert_settings
from passport_pipeline.settings.executors import executor_fields
from passport_pipeline.settings.gemini import gemini_fields, image_model
from passport_pipeline.settings.store import store_fields
from passport_pipeline.settings.values import (
    SettingsError,
    integer,
    month,
    number_or_none,
    seconds,
)

DEFAULT_HOME = "~/.passport_pipeline"


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
    celery_backend_in_env: bool = False
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
    # How often the daemon looks for runs whose process is gone and for stopped runs to record.
    watch_interval_s: float = 30.0

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
    model = image_model(get)
    store = store_fields(get)
    executor = executor_fields(get, store["image_store"])
    return Settings(
        home=home,
        database_url=get("PASSPORT_DATABASE_URL") or f"sqlite:///{home / 'app.sqlite3'}",
        image_model=model,
        **store,
        **executor,
        **gemini_fields(get),
        alerts=alert_settings(get),
        month_budget_usd=number_or_none(
            get("PASSPORT_MONTH_BUDGET_USD"), "PASSPORT_MONTH_BUDGET_USD"
        ),
        first_month=month(get("PASSPORT_FIRST_MONTH", "2024-01"), "PASSPORT_FIRST_MONTH"),
        month_due_day=_due_day(get("PASSPORT_MONTH_DUE_DAY", "3")),
        quota_resume_days=_resume_days(get("PASSPORT_QUOTA_RESUME_DAYS", "3")),
        watch_interval_s=seconds(
            get("PASSPORT_WATCH_INTERVAL_S", "30"), "PASSPORT_WATCH_INTERVAL_S"
        ),
    )


def _due_day(value: str) -> int:
    day = integer(value, "PASSPORT_MONTH_DUE_DAY")
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
