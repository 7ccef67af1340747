"""The thread executor on a small job of its own: steps in threads of one process, at once.

The job's steps wait on a barrier that opens only when all of them are in their op at the same
time, so a passing run proves they ran concurrently; each step reports its process and thread.
Whole-month behaviour (pools, RetryPolicy, Ctrl-C and re-execution) is tested on the real job
with ``dagster job execute`` in test_concurrency.py, test_faults.py and test_production_runs.py.
"""

from __future__ import annotations

import logging
import os
import threading

import pytest
from dagster import (
    DagsterEventType,
    DynamicOut,
    DynamicOutput,
    Failure,
    In,
    Nothing,
    RetryPolicy,
    execute_job,
    instance_for_test,
    job,
    op,
    reconstructable,
    success_hook,
)

from passport_pipeline.execution.executor import thread_executor_def

# The instance's python_logs handler config is a Dagster beta feature; it warns when read.
# These tests are also the tripwires of the Dagster internals the executor runs on
# (``make test-internals``): what its step loop yields, under retries, pools and hooks.
pytestmark = [
    pytest.mark.filterwarnings("ignore:Handling yaml-defined logging configuration"),
    pytest.mark.internals,
]

WIDTH = 12
LOGGER = "passport_pipeline_tests.fanout"
# Filled by ConstructionRecorder: the thread of every logging.config.dictConfig that built it.
CONSTRUCTED_IN: list[str] = []
_barrier = threading.Barrier(WIDTH, timeout=60)
_attempts: dict[str, int] = {}


class ConstructionRecorder(logging.Handler):
    """A handler of the instance's python_logs config: dictConfig builds one per call."""

    def __init__(self) -> None:
        super().__init__()
        CONSTRUCTED_IN.append(threading.current_thread().name)

    def emit(self, record: logging.LogRecord) -> None:
        pass


@op(out=DynamicOut(int))
def fan_out():
    """WIDTH mapped steps."""
    for index in range(WIDTH):
        yield DynamicOutput(index, mapping_key=f"n{index}")


@op(retry_policy=RetryPolicy(max_retries=1))
def meet(context, index: int) -> dict:
    """Waits until every step is here at once; logs through a managed Python logger."""
    _barrier.wait()
    logging.getLogger(LOGGER).warning("from step meet[%s]", context.get_mapping_key())
    return {"pid": os.getpid(), "thread": threading.get_ident()}


@op(retry_policy=RetryPolicy(max_retries=2))
def flaky(context) -> None:
    """Fails its first attempt, as a transient model error would."""
    _attempts[context.run_id] = _attempts.get(context.run_id, 0) + 1
    if _attempts[context.run_id] == 1:
        raise Failure("transient")


@op(ins={"start": In(Nothing)})
def gather(results: list[dict]) -> list[dict]:
    """Collects what each step saw."""
    return results


@job(executor_def=thread_executor_def())
def fanout_job():
    results = fan_out().map(meet).collect()
    gather(results)


@job(executor_def=thread_executor_def())
def flaky_job():
    flaky()


POOL = "tripwire"
POOL_LIMIT = 2
# Met only if more than POOL_LIMIT pooled steps are in their op at once.
_over_the_pool = threading.Barrier(POOL_LIMIT + 1)
_in_pool: list[int] = [0, 0]  # now, most
_in_pool_lock = threading.Lock()


@op(pool=POOL)
def pooled(index: int) -> dict:
    """Holds a slot of the pool; met: more steps than the pool's limit were in their op."""
    with _in_pool_lock:
        _in_pool[0] += 1
        _in_pool[1] = max(_in_pool)
    try:
        _over_the_pool.wait(timeout=0.5)
        return {"met": True}
    except threading.BrokenBarrierError:
        return {"met": False}
    finally:
        with _in_pool_lock:
            _in_pool[0] -= 1


@job(executor_def=thread_executor_def())
def pooled_job():
    gather(fan_out().map(pooled).collect())


@success_hook
def noted(context) -> None:
    """An op hook, which the thread executor does not run."""


@job(executor_def=thread_executor_def())
def hooked_job():
    flaky.with_hooks({noted})()


def logging_overrides() -> dict:
    return {
        "python_logs": {
            "managed_python_loggers": [LOGGER],
            "dagster_handler_config": {
                "handlers": {"recorder": {"()": f"{__name__}.ConstructionRecorder"}}
            },
        }
    }


def test_steps_run_at_once_in_threads_of_the_run_process():
    with instance_for_test(overrides=logging_overrides()) as instance:
        config = {"execution": {"config": {"max_concurrent": WIDTH}}}
        with execute_job(
            reconstructable(fanout_job), instance=instance, run_config=config
        ) as result:
            assert result.success
            seen = result.output_for_node("gather")
    assert len(seen) == WIDTH
    assert {step["pid"] for step in seen} == {os.getpid()}
    assert len({step["thread"] for step in seen}) == WIDTH


def test_logging_is_configured_once_per_run_never_from_a_step_thread():
    # Dagster's log manager runs logging.config.dictConfig each time one is created; from
    # concurrent step threads that deadlocked. Steps here share the run's log manager.
    CONSTRUCTED_IN.clear()
    with instance_for_test(overrides=logging_overrides()) as instance:
        config = {"execution": {"config": {"max_concurrent": WIDTH}}}
        with execute_job(
            reconstructable(fanout_job), instance=instance, run_config=config
        ) as result:
            assert result.success
    assert CONSTRUCTED_IN, "the instance's python_logs handlers were never configured"
    assert set(CONSTRUCTED_IN) == {"MainThread"}
    assert len(CONSTRUCTED_IN) < WIDTH


def test_a_python_log_line_is_recorded_once_for_the_step_that_wrote_it():
    # Every step in its op adds its handler to the managed loggers at once: without care, one
    # step's line would be recorded for each of the WIDTH steps.
    with instance_for_test(overrides=logging_overrides()) as instance:
        config = {"execution": {"config": {"max_concurrent": WIDTH}}}
        with execute_job(
            reconstructable(fanout_job), instance=instance, run_config=config
        ) as result:
            lines = [
                (entry.step_key, entry.user_message)
                for entry in instance.all_logs(result.run_id)
                if entry.user_message.startswith("from step ")
            ]
    assert len(lines) == WIDTH
    assert all(message == f"from step {step_key}" for step_key, message in lines)


def test_a_step_is_retried_by_its_retry_policy():
    with (
        instance_for_test() as instance,
        execute_job(reconstructable(flaky_job), instance=instance) as result,
    ):
        assert result.success
        retried = [
            e.step_key
            for e in result.all_events
            if e.event_type == DagsterEventType.STEP_UP_FOR_RETRY
        ]
    assert retried == ["flaky"]


def test_a_pool_holds_the_steps_in_their_op_to_its_limit():
    with instance_for_test() as instance:
        instance.event_log_storage.set_concurrency_slots(POOL, POOL_LIMIT)
        config = {"execution": {"config": {"max_concurrent": WIDTH}}}
        with execute_job(
            reconstructable(pooled_job), instance=instance, run_config=config
        ) as result:
            assert result.success
            met = result.output_for_node("gather")
        info = instance.event_log_storage.get_concurrency_info(POOL)
    assert len(met) == WIDTH
    assert not any(step["met"] for step in met), (
        "more steps than the pool's limit were in their op at once"
    )
    assert _in_pool[1] == POOL_LIMIT
    assert info.claimed_slots == [], "a slot outlived its step"


def test_a_job_with_op_hooks_is_refused_by_name():
    with (
        instance_for_test() as instance,
        execute_job(reconstructable(hooked_job), instance=instance) as result,
    ):
        assert not result.success
        [failure] = [
            event for event in result.all_events if event.event_type == DagsterEventType.RUN_FAILURE
        ]
    assert "does not run op hooks" in str(failure.event_specific_data.error)
