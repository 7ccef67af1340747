"""The one place environment variables are read.

Reading them builds plain values; nothing here connects, creates a file or logs. Secrets
(``GEMINI_API_KEY``, ``PASSPORT_KEY_SECRET``, AWS credentials) are never read into these
values: resources receive them as ``EnvVar`` and resolve them when a step runs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

IMAGE_MODELS = ("local", "gemini")
IMAGE_STORES = ("local", "s3")
DEFAULT_HOME = "~/.passport_pipeline"
DEFAULT_GEMINI_BASE_URL = "https://generativelanguage.googleapis.com"
DEFAULT_GEMINI_MODEL = "gemini-2.5-flash-image"


class SettingsError(ValueError):
    """An environment variable holds a value the pipeline cannot use."""


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str
    image_model: str
    image_store: str
    key_secret_in_env: bool
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
    return Settings(
        home=home,
        database_url=get("PASSPORT_DATABASE_URL") or f"sqlite:///{home / 'app.sqlite3'}",
        image_model=image_model,
        image_store=image_store,
        key_secret_in_env=key_secret_in_env,
        max_concurrent_steps=_integer(
            get("PASSPORT_MAX_CONCURRENT_STEPS", "50"), "PASSPORT_MAX_CONCURRENT_STEPS"
        ),
        step_retry_delay_s=_number(
            get("PASSPORT_STEP_RETRY_DELAY_S", "10"), "PASSPORT_STEP_RETRY_DELAY_S"
        ),
        gemini_base_url=get("GEMINI_BASE_URL", DEFAULT_GEMINI_BASE_URL).rstrip("/"),
        gemini_model=get("GEMINI_MODEL", DEFAULT_GEMINI_MODEL),
        gemini_aspect_ratio=get("GEMINI_ASPECT_RATIO", "3:4"),
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
    )


def _choice(value: str, allowed: tuple[str, ...], name: str) -> str:
    if value.lower() not in allowed:
        raise SettingsError(f"{name}={value!r} is not one of: {', '.join(allowed)}")
    return value.lower()


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
