"""Which runs are a month's, and which of them are over: one decision for every caller (pure).

Everyone who asks "the month's runs" — the one-run-per-month check, progress, the sensors and
alerts, the dead-run sensor, ``cli.reexecute`` and the app backend over GraphQL — asks these
functions, with what they have of a run: its job name, the asset keys it selected, its tags and
its id. A month launched from the asset's page runs as Dagster's implicit ``__ASSET_JOB``, so a
filter on the job's name alone misses it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from passport_pipeline.domain.run_state import own_state, own_state_tag

COVERS_ASSET = "passport_covers"
JOB_NAME = "monthly_passport_covers"
PARTITION_TAG = "dagster/partition"
# Set on a run that stood aside for an older run of its month before any step
# (covers/one_run.py): it did nothing and is none of the month's business. Its value is the
# run's own state (``run_state``: ``{"deferred_to": <older run id>, "run_id": <its id>}``).
REFUSED_TAG = "passport/refused"

# Dagster's run statuses (``DagsterRunStatus`` values, GraphQL's ``RunStatus``) of a run that is
# over; every other status (queued, not started, starting, started, canceling) is not.
FINISHED = frozenset({"SUCCESS", "FAILURE", "CANCELED"})
# Statuses of a run that exists but has not begun: it holds its month without any process.
NOT_BEGUN = frozenset({"QUEUED", "NOT_STARTED"})


def is_finished(status: str) -> bool:
    """Whether a run in ``status`` (any case: ``"failure"``, ``"FAILURE"``) is over."""
    return status.upper() in FINISHED


def refused_tag(run_id: str, ahead_run_id: str) -> dict[str, str]:
    """The tag that marks ``run_id`` as standing aside for ``ahead_run_id``."""
    return own_state_tag(REFUSED_TAG, run_id, {"deferred_to": ahead_run_id})


def is_refused(run_id: str, tags: Mapping[str, str]) -> bool:
    """A run that stood aside for an older run of its month (its own refusal: a re-execution
    copies its parent's tags, and with them the parent's refusal, which is not its own)."""
    # Runs refused before the tag became run state read "<run id> deferred to <older run id>".
    legacy = tags.get(REFUSED_TAG, "").startswith(f"{run_id} deferred to ")
    return legacy or own_state(tags, REFUSED_TAG, run_id) is not None


def runs_the_covers(job_name: str | None, asset_selection: Iterable[str] | None) -> bool:
    """A run that materializes the covers: the job, the asset's page (``__ASSET_JOB``),
    ``materialize`` (an ephemeral job), or any run that selects the covers asset.
    ``asset_selection`` holds asset keys as ``/``-joined strings."""
    selected = set(asset_selection or ())
    if job_name == JOB_NAME or COVERS_ASSET in selected:
        return True
    # Implicit asset jobs are named "__…"; in this code location they can only hold the covers.
    return bool(job_name) and job_name.startswith("__") and not selected


def is_month_run(
    run_id: str,
    job_name: str | None,
    asset_selection: Iterable[str] | None,
    tags: Mapping[str, str],
) -> bool:
    """One of the month's runs: a run of the covers not refused for an older run of its month."""
    return runs_the_covers(job_name, asset_selection) and not is_refused(run_id, tags)
