"""The names that tie the covers together: the asset, its job, its pool, its steps and tags.

The step keys of the asset's graph are ``passport_covers.month_users`` (the first step, whose
``users`` output fans out), ``passport_covers.generate_cover[user_7]`` (one per user) and
``passport_covers.record_month``.
"""

from __future__ import annotations

import re

from dagster import AssetKey, DagsterRun, DagsterRunStatus, DefaultSensorStatus, run_status_sensor

# Set on a run that stood aside for an older run of its month (covers/one_run.py): "<the run's
# own id> deferred to <the older run's id>" (a re-execution copies its parent's tags).
from passport_pipeline.domain.month_status import REFUSED_TAG

COVERS_ASSET = "passport_covers"
JOB_NAME = "monthly_passport_covers"
GEMINI_POOL = "gemini"
PARTITION_TAG = "dagster/partition"
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
    return run.tags.get(REFUSED_TAG, "").startswith(f"{run.run_id} ")


def is_covers_run(run: DagsterRun) -> bool:
    """A run of the job, or any other run that materializes the covers: from the asset's page
    (Dagster's implicit asset job, ``__ASSET_JOB``) or ``materialize`` (an ephemeral job). A run
    refused for an older run of its month is none of the month's business."""
    if is_refused(run):
        return False
    if run.job_name == JOB_NAME or AssetKey(COVERS_ASSET) in (run.asset_selection or ()):
        return True
    # Implicit asset jobs are named "__…"; in this code location they can only hold the covers.
    return run.job_name.startswith("__") and not run.asset_selection


def covers_run_status_sensor(status: DagsterRunStatus, name: str, description: str):
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
    )
