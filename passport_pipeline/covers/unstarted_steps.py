"""Users whose step never started in a stopped run, recorded so that re-execution covers them.

A run that stops half-way (Ctrl-C, Terminate, a killed process) leaves three kinds of users:
those whose step finished, those whose step was interrupted, and those whose step never started
because it was still waiting for a pool slot. Dagster's re-execution from failure retries the
first two kinds' failures but forgets the third (see ``dagster_internals``). Writing a step
failure for each of them, named, makes every planned user end with a cover or a failure, and
lets the UI's "Re-execute from failure" and ``passport_pipeline.cli.reexecute`` cover them all.

Called where a stop is seen: the executor when the run is interrupted, the run-status sensor for
failed and canceled runs (a killed process), and the re-execute command. It is idempotent.
"""

from __future__ import annotations

from dagster import DagsterEventType, DagsterInstance

from passport_pipeline.covers.names import (
    COVER_STEP,
    USERS_OUTPUT,
    USERS_STEP,
    is_covers_run,
    user_step_key,
)
from passport_pipeline.dagster_internals import report_step_never_started

NEVER_STARTED = (
    "the run stopped before this user's step started; nothing was paid for this user. "
    "Re-execute the run from failure to cover the user."
)
# Any of these for a step means Dagster's re-execution already accounts for it. Not
# STEP_WORKER_STARTING: a step process that a Ctrl-C cut while it was still starting (the
# multiprocess executor) has that event alone, nothing was paid for its user, and Dagster's
# re-execution reads past it, so it is recorded as never started too.
_STEP_EVENTS = {
    DagsterEventType.STEP_START,
    DagsterEventType.STEP_UP_FOR_RETRY,
    DagsterEventType.STEP_FAILURE,
    DagsterEventType.STEP_SUCCESS,
    DagsterEventType.STEP_SKIPPED,
    DagsterEventType.RESOURCE_INIT_FAILURE,
}


def planned_user_steps(instance: DagsterInstance, run_id: str) -> set[str]:
    """The user steps a run set out to execute: fanned out in it, or selected by re-execution."""
    run = instance.get_run_by_id(run_id)
    if run is None:
        raise LookupError(f"no run {run_id} in this Dagster instance")
    # A re-execution names the user steps it runs; "generate_cover[?]" is the unmapped step.
    unmapped = user_step_key("?")
    planned = {
        key
        for key in run.step_keys_to_execute or ()
        if key.startswith(f"{COVER_STEP}[") and key != unmapped
    }
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.STEP_OUTPUT):
        event = entry.get_dagster_event()
        output = event.step_output_data
        if event.step_key == USERS_STEP and output.output_name == USERS_OUTPUT:
            planned.add(user_step_key(output.mapping_key))
    return planned


def record_unstarted_user_steps(instance: DagsterInstance, run_id: str) -> list[str]:
    """Record every planned user step of the run that has no event yet as failed; their keys."""
    planned = planned_user_steps(instance, run_id)
    if not planned:
        return []
    seen = {entry.step_key for entry in instance.all_logs(run_id, of_type=_STEP_EVENTS)}
    unstarted = sorted(planned - seen)
    run = instance.get_run_by_id(run_id)
    for step_key in unstarted:
        report_step_never_started(instance, run_id, run.job_name, step_key, NEVER_STARTED)
    return unstarted


def record_stopped_run_users(instance: DagsterInstance, run_id: str) -> list[str]:
    """For a covers run that is ending stopped short: its never-started users, recorded."""
    run = instance.get_run_by_id(run_id)
    if run is None or not is_covers_run(run):
        return []
    return record_unstarted_user_steps(instance, run_id)
