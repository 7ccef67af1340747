"""How a run executes its steps: threads, a process per step, or Celery workers on any number
of machines (``execution/`` and README "More machines")."""

from __future__ import annotations

import os
from collections.abc import Mapping

from passport_pipeline.settings.values import Getter, SettingsError, choice, integer, number

EXECUTORS = ("threads", "multiprocess", "celery")
# Threads measured faster, lighter and cheaper than a process per step (bench/RESULTS.md).
DEFAULT_EXECUTOR = "threads"
DEFAULT_CELERY_BACKEND = "rpc://"


def executor_fields(get: Getter, image_store: str) -> dict:
    """The ``Settings`` fields of the executor; Celery's needs checked first."""
    executor = choice(get("PASSPORT_EXECUTOR", DEFAULT_EXECUTOR), EXECUTORS, "PASSPORT_EXECUTOR")
    if executor == "celery":
        _check_celery(get, image_store)
    return {
        "executor": executor,
        "max_concurrent_steps": integer(
            get("PASSPORT_MAX_CONCURRENT_STEPS", "50"), "PASSPORT_MAX_CONCURRENT_STEPS"
        ),
        "step_retry_delay_s": number(
            get("PASSPORT_STEP_RETRY_DELAY_S", "10"), "PASSPORT_STEP_RETRY_DELAY_S"
        ),
        # The broker's and result backend's URLs may hold passwords, so only whether the
        # backend is set is kept; the executor and the worker read them as EnvVar.
        "celery_backend_in_env": get("PASSPORT_CELERY_BACKEND") is not None,
    }


def _check_celery(get: Getter, image_store: str) -> None:
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
