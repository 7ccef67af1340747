"""The code location: one Definitions with the cover job, its schedule, resources and executor.

Everything environment-dependent comes from ``settings.load_settings()``; building the
definitions opens no connection and writes no file. Its one effect on the importing process is
on purpose: what the process loaded is frozen out of the garbage collector's reach
(``execution/long_lived_heap.py``).
"""

from __future__ import annotations

from dagster import Definitions, EnvVar

from passport_pipeline.covers.alerts import alert_resources_for, month_alert_sensors
from passport_pipeline.covers.asset import build_covers_asset, covers_job
from passport_pipeline.covers.one_run import claim_month
from passport_pipeline.covers.overdue import overdue_month_sensor
from passport_pipeline.covers.partitions import monthly_partitions
from passport_pipeline.covers.policies import cover_retry_policy
from passport_pipeline.covers.progress import publish_progress
from passport_pipeline.covers.quota_resume import quota_resume_sensor
from passport_pipeline.covers.schedule import monthly_covers_schedule
from passport_pipeline.covers.stopped import stopped_month_sensors
from passport_pipeline.covers.unstarted_steps import record_unstarted_user_steps
from passport_pipeline.execution.executor import covers_executor
from passport_pipeline.execution.long_lived_heap import freeze_long_lived_heap
from passport_pipeline.execution.run_health import dead_runs_sensor
from passport_pipeline.execution.run_hooks import RunHooks
from passport_pipeline.resources.app_db import AppDatabase
from passport_pipeline.resources.cover_keys import CoverKeys
from passport_pipeline.resources.image_model import AspectRatio, ImageModel, LocalImageModel
from passport_pipeline.resources.image_store import ImageStore, LocalImageStore
from passport_pipeline.resources.pending_covers import PendingCovers
from passport_pipeline.settings import Settings, load_settings


def image_model_for(settings: Settings) -> ImageModel:
    if settings.image_model in ("gemini", "gemini-batch"):
        from passport_pipeline.resources.gemini import GeminiImageModel

        gemini = GeminiImageModel
        batch: dict = {}
        if settings.image_model == "gemini-batch":
            from passport_pipeline.resources.gemini_batch import GeminiBatchImageModel

            gemini = GeminiBatchImageModel
            batch = {
                "batch_price_per_image_usd": settings.gemini_batch_price_per_image_usd,
                "inline_limit_bytes": settings.gemini_batch_inline_limit_bytes,
            }
        return gemini(
            api_key=EnvVar("GEMINI_API_KEY"),
            base_url=settings.gemini_base_url,
            model=settings.gemini_model,
            aspect_ratio=AspectRatio(settings.gemini_aspect_ratio),
            price_per_image_usd=settings.gemini_price_per_image_usd,
            fallback_to_local=settings.gemini_fallback_to_local,
            connect_timeout_s=settings.gemini_connect_timeout_s,
            read_timeout_s=settings.gemini_read_timeout_s,
            request_deadline_s=settings.gemini_request_deadline_s,
            max_image_bytes=settings.max_image_bytes,
            max_requests_per_minute=settings.gemini_max_requests_per_minute,
            pacing=settings.gemini_pacing,
            start_width=settings.gemini_start_width,
            start_rate=settings.gemini_start_rate,
            **batch,
        )
    return LocalImageModel()


def image_store_for(settings: Settings) -> ImageStore:
    if settings.image_store == "s3":
        from dagster_aws.s3 import S3Resource

        from passport_pipeline.resources.s3_store import S3ImageStore

        # Region, endpoint and credentials come from boto3's own chain (AWS_* variables, roles).
        return S3ImageStore(
            s3=S3Resource(),
            bucket=settings.s3_bucket,
            prefix=settings.s3_prefix,
            public_base_url=settings.public_base_url,
        )
    return LocalImageStore(root=str(settings.local_store_root))


def resources_for(settings: Settings) -> dict:
    return {
        "app_db": AppDatabase(url=settings.database_url),
        "image_model": image_model_for(settings),
        "image_store": image_store_for(settings),
        "cover_keys": CoverKeys(
            secret=EnvVar("PASSPORT_KEY_SECRET") if settings.key_secret_in_env else None,
            secret_file=str(settings.key_secret_file),
        ),
        "pending_covers": PendingCovers(root=str(settings.pending_root)),
        **step_records_resources(settings),
    }


def step_records_resources(settings: Settings) -> dict:
    """On celery, step outputs go to S3, where every worker reads them; else Dagster's default."""
    if settings.executor != "celery":
        return {}
    from passport_pipeline.execution.celery_executor import step_records_io_manager

    return {"io_manager": step_records_io_manager(settings)}


# The covers' duties in the run process, handed to the executor (execution/ never imports
# covers/): one run of a month at a time, the progress tag, the users a stop left unstarted.
COVERS_RUN_HOOKS = RunHooks(
    before_steps=claim_month,
    progress=publish_progress,
    after_stop=record_unstarted_user_steps,
)


def build_definitions(settings: Settings) -> Definitions:
    resources = resources_for(settings)
    resume_days = settings.quota_resume_days
    return Definitions(
        assets=[
            build_covers_asset(
                cover_retry_policy(settings.step_retry_delay_s),
                monthly_partitions(settings.first_month),
            )
        ],
        jobs=[covers_job],
        schedules=[monthly_covers_schedule(covers_job)],
        sensors=[
            *stopped_month_sensors(
                covers_job.name, settings.alerts.ui_url, settings.watch_interval_s
            ),
            dead_runs_sensor(covers_job.name, settings.watch_interval_s),
            overdue_month_sensor(covers_job.name, settings),
            *month_alert_sensors(
                covers_job.name,
                settings.alerts.ui_url,
                quota_resume_days=settings.quota_resume_days,
            ),
            quota_resume_sensor(covers_job.name, resume_days),
            *_batch_sensors(settings),
        ],
        resources={**resources, **alert_resources_for(settings)},
        executor=covers_executor(settings, resources, COVERS_RUN_HOOKS),
    )


def _batch_sensors(settings: Settings) -> list:
    if settings.image_model != "gemini-batch":
        return []
    from passport_pipeline.covers.batch_sensor import batch_sensors

    return batch_sensors(covers_job, settings.batch_poll_interval_s)


defs = build_definitions(load_settings())
# What the code location loaded lives as long as the process (execution/long_lived_heap.py).
freeze_long_lived_heap()
