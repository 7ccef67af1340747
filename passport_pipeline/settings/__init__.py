"""The pipeline's settings, read from the environment in this package only (``core``), by
concept: the image model (``gemini``), where covers go (``store``), how steps run
(``executors``) and where alerts go (``alerts``)."""

from passport_pipeline.settings.alerts import (
    DEFAULT_SLACK_API_URL,
    SMTP_TLS_MODES,
    AlertSettings,
)
from passport_pipeline.settings.core import DEFAULT_HOME, Settings, load_settings
from passport_pipeline.settings.executors import (
    DEFAULT_CELERY_BACKEND,
    DEFAULT_EXECUTOR,
    EXECUTORS,
    celery_urls,
)
from passport_pipeline.settings.gemini import (
    ASPECT_RATIOS,
    DEFAULT_GEMINI_BASE_URL,
    DEFAULT_GEMINI_MODEL,
    IMAGE_MODELS,
)
from passport_pipeline.settings.store import IMAGE_STORES
from passport_pipeline.settings.values import SettingsError

__all__ = [
    "ASPECT_RATIOS",
    "DEFAULT_CELERY_BACKEND",
    "DEFAULT_EXECUTOR",
    "DEFAULT_GEMINI_BASE_URL",
    "DEFAULT_GEMINI_MODEL",
    "DEFAULT_HOME",
    "DEFAULT_SLACK_API_URL",
    "EXECUTORS",
    "IMAGE_MODELS",
    "IMAGE_STORES",
    "SMTP_TLS_MODES",
    "AlertSettings",
    "Settings",
    "SettingsError",
    "celery_urls",
    "load_settings",
]
