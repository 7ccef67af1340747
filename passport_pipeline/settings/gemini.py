"""The image model's settings: which model, Gemini's endpoint, prices, timeouts and pace."""

from __future__ import annotations

from passport_pipeline.settings.values import (
    Getter,
    SettingsError,
    choice,
    flag,
    integer,
    number,
    positive_or_none,
    seconds,
)

IMAGE_MODELS = ("local", "gemini", "gemini-batch")
DEFAULT_GEMINI_BASE_URL = "https://generativelanguage.googleapis.com"
DEFAULT_GEMINI_MODEL = "gemini-2.5-flash-image"
# The shapes Gemini draws (resources/image_model.py AspectRatio).
ASPECT_RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")


def image_model(get: Getter) -> str:
    return choice(get("PASSPORT_IMAGE_MODEL", "local"), IMAGE_MODELS, "PASSPORT_IMAGE_MODEL")


def gemini_fields(get: Getter) -> dict:
    """The ``Settings`` fields of Gemini (the key is never read here: resources get EnvVar)."""
    return {
        "gemini_base_url": get("GEMINI_BASE_URL", DEFAULT_GEMINI_BASE_URL).rstrip("/"),
        "gemini_model": get("GEMINI_MODEL", DEFAULT_GEMINI_MODEL),
        "gemini_aspect_ratio": _aspect_ratio(get("GEMINI_ASPECT_RATIO", "3:4")),
        "gemini_price_per_image_usd": number(
            get("GEMINI_PRICE_PER_IMAGE_USD", "0.039"), "GEMINI_PRICE_PER_IMAGE_USD"
        ),
        "gemini_fallback_to_local": flag(
            get("PASSPORT_FALLBACK_TO_LOCAL", "false"), "PASSPORT_FALLBACK_TO_LOCAL"
        ),
        "gemini_connect_timeout_s": seconds(
            get("GEMINI_CONNECT_TIMEOUT_S", "10"), "GEMINI_CONNECT_TIMEOUT_S"
        ),
        # The model is silent until its image is done: up to about 2 minutes, plus margin.
        "gemini_read_timeout_s": seconds(
            get("GEMINI_READ_TIMEOUT_S", "150"), "GEMINI_READ_TIMEOUT_S"
        ),
        # A whole attempt: 2 minutes of generation, queueing, and up to 27 MB of base64.
        "gemini_request_deadline_s": seconds(
            get("GEMINI_REQUEST_DEADLINE_S", "180"), "GEMINI_REQUEST_DEADLINE_S"
        ),
        "max_image_bytes": integer(
            get("PASSPORT_MAX_IMAGE_BYTES", "20000000"), "PASSPORT_MAX_IMAGE_BYTES"
        ),
        "gemini_batch_price_per_image_usd": number(
            get("GEMINI_BATCH_PRICE_PER_IMAGE_USD", "0.0195"), "GEMINI_BATCH_PRICE_PER_IMAGE_USD"
        ),
        # The Batch API guide: inline requests while "the total request size [is] under 20MB".
        "gemini_batch_inline_limit_bytes": integer(
            get("GEMINI_BATCH_INLINE_LIMIT_BYTES", "20000000"), "GEMINI_BATCH_INLINE_LIMIT_BYTES"
        ),
        "batch_poll_interval_s": seconds(
            get("PASSPORT_BATCH_POLL_INTERVAL_S", "60"), "PASSPORT_BATCH_POLL_INTERVAL_S"
        ),
        # The pace of paid calls across the deployment (resources/pacing.py).
        "gemini_max_requests_per_minute": positive_or_none(
            get("GEMINI_MAX_REQUESTS_PER_MINUTE"), "GEMINI_MAX_REQUESTS_PER_MINUTE"
        ),
        "gemini_pacing": flag(get("GEMINI_PACING", "true"), "GEMINI_PACING"),
        "gemini_start_width": max(1, integer(get("GEMINI_START_WIDTH", "4"), "GEMINI_START_WIDTH")),
        "gemini_start_rate": positive_or_none(get("GEMINI_START_RATE", "60"), "GEMINI_START_RATE")
        or 60.0,
    }


def _aspect_ratio(value: str) -> str:
    if value not in ASPECT_RATIOS:
        raise SettingsError(f"GEMINI_ASPECT_RATIO={value!r}: one of {', '.join(ASPECT_RATIOS)}")
    return value
