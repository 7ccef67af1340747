"""Re-execute a failed run from failure: only the failed (and never started) steps and what
follows them — what the UI's "Re-execute → From failure" does, from the shell.

    python -m passport_pipeline.cli.reexecute RUN_ID

Steps that succeeded are not run again: their outputs (the users' cover records) are read from
the parent run, so no user who already has a cover is drawn twice.
"""

from __future__ import annotations

import argparse
import sys

from dagster import (
    DagsterInstance,
    DagsterRunStatus,
    JobDefinition,
    ReexecutionOptions,
    execute_job,
    reconstructable,
)

from passport_pipeline.covers.names import JOB_NAME, PARTITION_TAG, is_covers_run
from passport_pipeline.covers.progress import PROGRESS_TAG
from passport_pipeline.covers.unstarted_steps import record_unstarted_user_steps

# Dagster's documented run-group tags: what the UI's re-execution sets.
PARENT_RUN_ID_TAG = "dagster/parent_run_id"
ROOT_RUN_ID_TAG = "dagster/root_run_id"
RESUME_RETRY_TAG = "dagster/is_resume_retry"


def covers_job_definition() -> JobDefinition:
    """The covers' job as the code location defines it (module scope, so that the step
    processes can rebuild it)."""
    from passport_pipeline.definitions import defs

    return defs.resolve_job_def(JOB_NAME)


def reexecution_tags(parent_tags: dict[str, str], parent_run_id: str, root_run_id: str) -> dict:
    """The parent's own tags and its month; Dagster's bookkeeping tags (backfill, retry
    number, failure reason, …) stay with the parent, and so does its progress line (the
    re-execution publishes the month's own at its start); the run-group tags tie the two."""
    kept = {
        key: value
        for key, value in parent_tags.items()
        if (not key.startswith("dagster/") or key == PARTITION_TAG) and key != PROGRESS_TAG
    }
    return {
        **kept,
        PARENT_RUN_ID_TAG: parent_run_id,
        ROOT_RUN_ID_TAG: root_run_id,
        RESUME_RETRY_TAG: "true",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_id", help="the failed run to re-execute")
    args = parser.parse_args(argv)

    instance = DagsterInstance.get()
    parent = instance.get_run_by_id(args.run_id)
    if parent is None:
        print(f"no run {args.run_id} in the instance at {instance.root_directory}", file=sys.stderr)
        return 2
    if not is_covers_run(parent):
        print(
            f"run {args.run_id} is a run of {parent.job_name}, not of the covers", file=sys.stderr
        )
        return 2
    if parent.status in (DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED):
        # Normally done when the run stopped; a run whose process was killed before the
        # sensor saw it is covered here.
        unstarted = record_unstarted_user_steps(instance, parent.run_id)
        if unstarted:
            print(f"recorded {len(unstarted)} users whose step never started", file=sys.stderr)
    try:
        options = ReexecutionOptions.from_failure(args.run_id, instance)
    except Exception as error:  # Dagster says why (e.g. the run did not fail)
        print(f"cannot re-execute {args.run_id}: {error}", file=sys.stderr)
        return 2
    # What the UI's re-execution carries over: the parent's config and tags (its month).
    tags = reexecution_tags(parent.tags, parent.run_id, parent.root_run_id or parent.run_id)
    # A run from the asset's page (``__ASSET_JOB``) is re-executed as the job: the same asset,
    # the same steps (a reserved name like ``__ASSET_JOB`` cannot be rebuilt on its own).
    with execute_job(
        reconstructable(covers_job_definition),
        instance=instance,
        run_config=parent.run_config,
        tags=tags,
        reexecution_options=options,
    ) as result:
        print(
            f"re-execution {result.run_id} of {args.run_id}: "
            f"{'succeeded' if result.success else 'failed'}"
        )
        return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main())
