"""Each Dagster internal we rely on still does what ``dagster_internals`` expects, and is still
needed. With ``execution/test_thread_executor.py``, ``execution/test_sqlite_storage.py`` and
``execution/test_instance_storage.py`` these are the tripwires ``make test-internals`` runs when
the pins move: a Dagster upgrade that moves or changes one fails here, by name, before it can
break a run."""

from __future__ import annotations

import importlib.util
import inspect
import sys

import pytest
from dagster import DagsterEventType, DagsterInstance, instance_for_test

from passport_pipeline import dagster_internals

pytestmark = pytest.mark.internals


def test_the_private_names_still_resolve():
    from dagster._core.execution.plan.handle import ResolvedFromDynamicStepHandle

    handle = dagster_internals.StepHandle.parse_from_key("generate_cover[user_7]")
    assert isinstance(handle, ResolvedFromDynamicStepHandle)
    assert handle.mapping_key == "user_7"
    assert "error_source" in inspect.signature(dagster_internals.StepFailureData).parameters
    assert dagster_internals.ErrorSource.INTERRUPT


def test_the_step_workers_modules_still_exist():
    # The executor preloads them into its forkserver: a renamed one would make steps slow.
    for name in dagster_internals.STEP_WORKER_MODULES:
        assert importlib.util.find_spec(name) is not None, name


def test_the_public_run_group_tags_are_dagsters():
    from dagster._core.storage import tags

    from passport_pipeline.cli import reexecute

    assert reexecute.PARENT_RUN_ID_TAG == tags.PARENT_RUN_ID_TAG
    assert reexecute.ROOT_RUN_ID_TAG == tags.ROOT_RUN_ID_TAG
    assert reexecute.RESUME_RETRY_TAG == tags.RESUME_RETRY_TAG


def test_the_upstream_gap_is_still_there():
    # Re-execution from failure still reads only these events to find steps to retry: a mapped
    # step with none of them is forgotten. When this fails, check whether Dagster now retries
    # never-started mapped steps itself (dagster-io/dagster#30248) and drop our workaround.
    from dagster._core.execution.plan import state

    source = inspect.getsource(state._derive_state_of_past_run)
    assert "DagsterEventType.STEP_START," in source
    assert "STEP_WORKER_STARTING" not in source


def test_a_step_recorded_as_never_started_reads_as_a_failure_of_that_step():
    with instance_for_test() as instance:
        instance: DagsterInstance
        dagster_internals.report_step_never_started(
            instance, "run-1", "monthly_passport_covers", "generate_cover[user_7]", "stopped"
        )
        [entry] = instance.all_logs("run-1", of_type=DagsterEventType.STEP_FAILURE)
        event = entry.get_dagster_event()
        assert event.step_key == "generate_cover[user_7]"
        assert event.step_failure_data.error.message == "stopped"
        assert "never started" in event.message


def test_the_active_execution_still_answers_the_thread_executors_calls():
    # Behaviour is tested by running jobs on the thread executor (execution/
    # test_thread_executor.py); this names the call an upgrade removed.
    from dagster import DagsterExecutionInterruptedError, job, op
    from dagster._core.execution.api import create_execution_plan
    from dagster._core.execution.retries import RetryMode

    @op
    def one() -> None:
        """A step."""

    @job
    def single():
        one()

    missing = ["(not reached)"]
    # A stop with a step in flight ends the plan as interrupted, which the executor relies on.
    with (
        pytest.raises(DagsterExecutionInterruptedError),
        create_execution_plan(single).start(retry_mode=RetryMode.DISABLED) as active,
    ):
        missing = [
            name for name in dagster_internals.ACTIVE_EXECUTION_CALLS if not hasattr(active, name)
        ]
        assert [step.key for step in active.get_steps_to_execute()] == ["one"]
        active.mark_interrupted()
    assert missing == []


def test_our_pool_claim_is_the_one_dagsters_claim_runs(tmp_path):
    # The storages override a private method: if an upgrade renames it, ours silently stops
    # being called. Watch the public claim run, and check that our claim ran under it.
    from passport_pipeline.execution import instance_storage

    (tmp_path / "dagster.yaml").write_text(
        "instance_class:\n  module: passport_pipeline.instance\n  class: PassportInstance\n"
    )
    ran: set = set()

    def watch(frame, event, _arg):
        if event == "call":
            ran.add(frame.f_code)

    with DagsterInstance.from_config(str(tmp_path)) as instance:
        storage = instance.event_log_storage
        storage.set_concurrency_slots("gemini", 1)
        sys.setprofile(watch)
        try:
            first = storage.claim_concurrency_slot("gemini", "run-1", "step-1")
        finally:
            sys.setprofile(None)
        second = storage.claim_concurrency_slot("gemini", "run-2", "step-2")
    assert instance_storage.claim_one_slot.__code__ in ran
    assert hasattr(type(storage), dagster_internals.CLAIM_SLOT_METHOD)
    assert first.slot_status == dagster_internals.ConcurrencySlotStatus.CLAIMED
    assert second.slot_status == dagster_internals.ConcurrencySlotStatus.BLOCKED


def test_the_instance_class_still_fits_dagsters_hooks(tmp_path):
    # A yaml naming the class must still load it, a run's InstanceRef must still name it, and
    # the handlers it configures once must be what Dagster asks for (behaviour of a run:
    # execution/test_thread_executor.py, logging configured once per run).
    from passport_pipeline.instance import PassportInstance

    (tmp_path / "dagster.yaml").write_text(
        "instance_class:\n  module: passport_pipeline.instance\n  class: PassportInstance\n"
    )
    with DagsterInstance.from_config(str(tmp_path)) as instance:
        assert type(instance) is PassportInstance
        assert type(DagsterInstance.from_ref(instance.get_ref())) is PassportInstance
        assert instance.get_yaml_python_handlers() is instance.get_yaml_python_handlers()
