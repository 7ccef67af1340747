"""Steps on many machines: dagster-celery with RabbitMQ (``PASSPORT_EXECUTOR=celery``).

The run process stays where it is (``dagster job execute``, or the run the daemon launches): it
claims the ``gemini`` pool slots in the instance's PostgreSQL, so the limit stays global however
many workers there are, and sends each step whose slot it holds to the broker as a Celery task.
Any worker (``deploy/celery_worker.sh``, on any machine) runs the step and sends its events back
through the result backend. What a step hands to the next one — the month's users, each user's
record — goes through S3 (dagster-aws's ``S3PickleIOManager``), so any worker can read it.

The run process keeps its duties of ``CoversExecutor`` (its process recorded, dead slot holders
reported, progress on the run page, users of a stopped run recorded as failed).
"""

from __future__ import annotations

from dagster import (
    Executor,
    ExecutorDefinition,
    executor,
    multiple_process_executor_requirements,
)
from dagster_aws.s3 import S3PickleIOManager, S3Resource
from dagster_celery import celery_executor
from dagster_celery.executor import CELERY_CONFIG

from passport_pipeline.execution.run_hooks import CoversExecutor, RunHooks
from passport_pipeline.settings import DEFAULT_CELERY_BACKEND, Settings

# The Celery settings the run process and every worker share (the worker's app: celery_worker.py).
CELERY_APP_CONFIG = {
    # A step's task is acknowledged when it ends, not when a worker takes it: the tasks of a
    # worker that dies mid-step (kill -9, a lost machine) go back to the broker, which hands them
    # to another worker. The step runs again there, under the pool slot the run still holds; a
    # cover already stored is reused, not paid again.
    "task_acks_late": True,
    "task_reject_on_worker_lost": True,
    # A worker takes one task per free thread, never a backlog another worker could run now.
    "worker_prefetch_multiplier": 1,
    "broker_connection_retry_on_startup": True,
}
# Under the covers' prefix, apart from them: small pickled records, never image bytes.
STEP_RECORDS_PREFIX = "dagster-step-records"


class _CoversCeleryExecutor(CoversExecutor):
    """dagster-celery's loop asks the run's executor for its Celery app settings."""

    def app_args(self) -> dict:
        return self._inner.app_args()


def celery_executor_def(hooks: RunHooks) -> ExecutorDefinition:
    """Each step a Celery task on any worker (dagster-celery); see ``CoversExecutor``."""

    @executor(
        name="covers_celery",
        config_schema=CELERY_CONFIG,
        requirements=multiple_process_executor_requirements(),
    )
    def covers_celery_executor(init_context) -> Executor:
        """Each step a Celery task on any worker, with the covers' duties in the run process."""
        return _CoversCeleryExecutor(celery_executor.executor_creation_fn(init_context), hooks)

    return covers_celery_executor


def covers_celery(settings: Settings, hooks: RunHooks) -> ExecutorDefinition:
    """The celery executor on the broker and backend of the environment (read when a run starts:
    their URLs may hold passwords, and never enter the run's config)."""
    backend = (
        {"env": "PASSPORT_CELERY_BACKEND"}
        if settings.celery_backend_in_env
        else DEFAULT_CELERY_BACKEND
    )
    return celery_executor_def(hooks).configured(
        {
            "broker": {"env": "PASSPORT_CELERY_BROKER"},
            "backend": backend,
            "config_source": CELERY_APP_CONFIG,
        }
    )


def step_records_io_manager(settings: Settings) -> S3PickleIOManager:
    """Step outputs in the covers' bucket, readable by every worker and by a re-execution."""
    prefix = "/".join(part for part in (settings.s3_prefix, STEP_RECORDS_PREFIX) if part)
    # Region, endpoint and credentials come from boto3's own chain, as for the covers.
    return S3PickleIOManager(
        s3_resource=S3Resource(), s3_bucket=settings.s3_bucket, s3_prefix=prefix
    )
