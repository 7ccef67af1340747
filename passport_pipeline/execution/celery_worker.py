"""The Celery app a worker machine runs (``deploy/celery_worker.sh``):

    celery -A passport_pipeline.execution.celery_worker worker -P threads -c 50 -Q dagster

Built like dagster-celery's own ``dagster_celery.app``, but on the broker and backend of this
machine's environment (``PASSPORT_CELERY_BROKER``, ``PASSPORT_CELERY_BACKEND``) and with the
settings the run process uses (``CELERY_APP_CONFIG``), so both sides agree. Only the worker
imports this module: importing it reads the environment and builds the app (no connection).
"""

from __future__ import annotations

from dagster_celery.executor import CeleryExecutor
from dagster_celery.make_app import make_app
from dagster_celery.tasks import create_task

from passport_pipeline.execution.celery_executor import CELERY_APP_CONFIG
from passport_pipeline.settings import celery_urls

_broker, _backend = celery_urls()
app = make_app(
    CeleryExecutor.for_cli(
        broker=_broker, backend=_backend, config_source=CELERY_APP_CONFIG
    ).app_args()
)
execute_plan = create_task(app)
