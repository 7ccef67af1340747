"""Re-execute a failed run from failure: only the failed (and never started) steps and what
follows them — what the UI's "Re-execute → From failure" does, from the shell.

    python -m passport_pipeline.reexecute RUN_ID

Steps that succeeded are not run again: their outputs (the users' cover records) are read from
the parent run, so no user who already has a cover is drawn twice.
"""

from __future__ import annotations

import argparse
import os
import sys

from dagster import DagsterInstance, DagsterRunStatus, ReexecutionOptions, execute_job
from dagster._core.definitions.reconstruct import ReconstructableRepository
from dagster._core.storage.tags import (
    PARENT_RUN_ID_TAG,
    RESUME_RETRY_TAG,
    ROOT_RUN_ID_TAG,
    TAGS_TO_MAYBE_OMIT_ON_RETRY,
)

from passport_pipeline.covers_job import JOB_NAME
from passport_pipeline.unstarted_steps import record_unstarted_user_steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_id", help="the failed run to re-execute")
    args = parser.parse_args(argv)

    instance = DagsterInstance.get()
    parent = instance.get_run_by_id(args.run_id)
    if parent is None:
        print(f"no run {args.run_id} in the instance at {instance.root_directory}", file=sys.stderr)
        return 2
    if parent.job_name != JOB_NAME:
        print(f"run {args.run_id} is a run of {parent.job_name}, not {JOB_NAME}", file=sys.stderr)
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
    job = ReconstructableRepository.for_module(
        "passport_pipeline.definitions", "defs", working_directory=os.getcwd()
    ).get_reconstructable_job(JOB_NAME)
    # What the UI's re-execution carries over: the parent's config and tags (its month), and
    # the run-group tags that tie the runs together for progress and the UI's run list.
    tags = {
        **{k: v for k, v in parent.tags.items() if k not in TAGS_TO_MAYBE_OMIT_ON_RETRY},
        PARENT_RUN_ID_TAG: parent.run_id,
        ROOT_RUN_ID_TAG: parent.root_run_id or parent.run_id,
        RESUME_RETRY_TAG: "true",
    }
    with execute_job(
        job,
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
