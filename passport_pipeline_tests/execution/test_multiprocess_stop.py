"""A step process cut off after its run was told to stop ends as stopped, not "up for retry".

Dagster's multiprocess executor passes a Ctrl-C on to its step processes; one that ends without
a word (still starting, or killed) counts as crashed, and Dagster applies the step's
RetryPolicy to it: the run page would show the user waiting to retry in a run that retries
nothing. Here the stop and the crash are made to happen in that order, on a real run of the
multiprocess executor (``CoversExecutor`` around Dagster's).
"""

import os
import signal
import time

import pytest
from dagster import (
    DagsterEventType,
    DagsterRunStatus,
    Definitions,
    JobDefinition,
    OpExecutionContext,
    RetryPolicy,
    build_reconstructable_job,
    execute_job,
    job,
    op,
)

from passport_pipeline.dagster_internals import ErrorSource, from_failure_step_keys
from passport_pipeline.execution.executor import multiprocess_executor_def
from passport_pipeline_tests.support.deployment import REPO
from passport_pipeline_tests.support.waiting import wait_for

# Dagster's behaviour under our wrapper: a tripwire of `make test-internals` too.
pytestmark = pytest.mark.internals


def _wait_for_event(context: OpExecutionContext, event_type: DagsterEventType, text: str) -> None:
    def seen() -> bool:
        return any(
            text in (entry.dagster_event.message or "") or text == entry.dagster_event.step_key
            for entry in context.instance.all_logs(context.run_id, of_type=event_type)
        )

    wait_for(seen, f"a {event_type} with {text!r}", 120, every_s=0.05)


@op(config_schema={"run_pid": int})
def stopper(context: OpExecutionContext) -> None:
    """Ctrl-C the run process once the other step is running."""
    _wait_for_event(context, DagsterEventType.STEP_START, "crasher")
    os.kill(context.op_config["run_pid"], signal.SIGINT)


@op(retry_policy=RetryPolicy(max_retries=2))
def crasher(context: OpExecutionContext) -> None:
    """Gone without a word the moment the executor's stop reaches it (a process killed just
    as the stop came). Not sooner: a step process that dies while Dagster's termination thread
    waits on its stop event leaves a waiter behind in that event (CPython's multiprocessing
    Condition), and the executor's ``set()`` of it then waits forever for the dead waiter: the
    run hangs (seen once here, when this step ended on the stop's engine event instead)."""
    signal.signal(signal.SIGINT, lambda *_: os._exit(1))  # the stop arrives as SIGINT
    time.sleep(120)
    raise AssertionError("the executor's stop never reached this step")


@job
def stopped_while_a_step_crashes():
    stopper()
    crasher()


def multiprocess_job() -> JobDefinition:
    return Definitions(
        jobs=[stopped_while_a_step_crashes],
        executor=multiprocess_executor_def().configured(
            {"max_concurrent": 2, "start_method": {"spawn": {}}}
        ),
    ).resolve_job_def(stopped_while_a_step_crashes.name)


def test_a_step_crashing_after_the_stop_ends_stopped_and_is_re_executed_from_failure(
    instance,
):
    # The step processes import this module from the checkout.
    reconstructable = build_reconstructable_job(
        __name__, multiprocess_job.__name__, reconstructor_working_directory=str(REPO)
    )
    config = {"ops": {"stopper": {"config": {"run_pid": os.getpid()}}}}
    with execute_job(
        reconstructable, instance=instance, run_config=config, raise_on_error=False
    ) as result:
        run_id = result.run_id

    run = instance.get_run_by_id(run_id)
    assert run.status is DagsterRunStatus.FAILURE
    # Dagster stores its "up for retry" as it makes it; what the step ends as comes after.
    crasher_events = [
        entry.dagster_event
        for entry in instance.all_logs(run_id)
        if entry.dagster_event is not None and entry.dagster_event.step_key == "crasher"
    ]
    failure = crasher_events[-1]
    assert failure.event_type is DagsterEventType.STEP_FAILURE
    data = failure.step_failure_data
    assert data.error_source is ErrorSource.INTERRUPT
    assert "crasher: stopped: the run was stopped" in data.error.message
    assert "Re-execute the run from failure" in data.error.message
    assert data.error.cause is not None  # Dagster's own account of the crash, kept
    assert "crasher" in from_failure_step_keys(instance, run)
