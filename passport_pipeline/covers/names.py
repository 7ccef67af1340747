"""The names that tie the covers together: the asset, its job, its pool, its steps, the
partition and halt tags. Each other ``passport/*`` tag lives beside what writes it:
``passport/progress`` (covers/progress.py), ``passport/alerts`` (covers/alerts.py),
``passport/lane`` (covers/asset.py), ``passport/total`` and ``passport/unknown_user_count``
(domain/month_status.py), ``passport/refused`` (domain/month_runs.py) and
``passport/run_process`` (execution/run_process.py).

The step keys of the asset's graph are ``passport_covers.month_users`` (the first step, whose
``users`` output fans out), ``passport_covers.generate_cover[user_7]`` (one per user) and
``passport_covers.record_month``.
"""

from __future__ import annotations

import re

from dagster import DagsterRun, DagsterRunStatus, DefaultSensorStatus, run_status_sensor

from passport_pipeline.domain import month_runs
from passport_pipeline.domain.month_runs import (  # noqa: F401 (the names, in one place)
    COVERS_ASSET,
    JOB_NAME,
    PARTITION_TAG,
    REFUSED_TAG,
)

GEMINI_POOL = "gemini"
HALT_TAG = "passport/halted"
COVER_OP = "generate_cover"
USERS_STEP = f"{COVERS_ASSET}.month_users"
USERS_OUTPUT = "users"
COVER_STEP = f"{COVERS_ASSET}.{COVER_OP}"


def user_step_key(mapping_key: str) -> str:
    """The step key of one user's cover step: ``passport_covers.generate_cover[user_7]``."""
    return f"{COVER_STEP}[{mapping_key}]"


# Runs made before the month became an asset named the step without the graph's prefix.
_USER_STEP = re.compile(rf"^(?:{COVERS_ASSET}\.)?{COVER_OP}\[(?P<mapping_key>[^\]]+)\]$")


def user_of_step(step_key: str | None) -> str | None:
    """The mapping key (``user_7``) of a user's cover step; None for any other step."""
    match = _USER_STEP.match(step_key or "")
    return match.group("mapping_key") if match else None


def is_refused(run: DagsterRun) -> bool:
    """A run that stood aside for an older run of its month before any step: it did nothing."""
    return month_runs.is_refused(run.run_id, run.tags)


def is_covers_run(run: DagsterRun) -> bool:
    """A run of the job, or any other run that materializes the covers: from the asset's page
    (Dagster's implicit asset job, ``__ASSET_JOB``) or ``materialize`` (an ephemeral job). A run
    refused for an older run of its month is none of the month's business (``month_runs``)."""
    selection = [key.to_user_string() for key in run.asset_selection or ()]
    return month_runs.is_month_run(run.run_id, run.job_name, selection, run.tags)


def covers_run_status_sensor(
    status: DagsterRunStatus, name: str, description: str, interval_s: float | None = None
):
    """A run-status sensor, on by default, that sees every run of the instance; its body keeps
    the covers' runs with ``is_covers_run``.

    Every run is watched, then filtered: a month materialized from the asset's page runs as
    Dagster's implicit asset job, and a ``dagster job execute`` run's origin is not this code
    location as the daemon loads it (a sensor limited to the location never sees those)."""
    return run_status_sensor(
        run_status=status,
        name=name,
        monitor_all_code_locations=True,
        default_status=DefaultSensorStatus.RUNNING,
        description=description,
        # None: the daemon's default for sensors (30 s).
        minimum_interval_seconds=None if interval_s is None else max(1, int(interval_s)),
    )
