"""Each Dagster internal we rely on is where ``dagster_internals`` expects it, and still needed.

A Dagster upgrade that moves or changes one fails here, by name, before it can break a run."""

from __future__ import annotations

import importlib.util
import inspect

from dagster import DagsterEventType, DagsterInstance, instance_for_test

from passport_pipeline import dagster_internals


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


def test_the_instance_class_still_fits_dagsters_hooks(tmp_path):
    # PassportInstance replaces the one method that runs dictConfig per step: it must still be
    # the method the step's log manager calls, and a yaml naming the class must still load.
    from dagster._core.log_manager import DagsterLogManager

    from passport_pipeline.execution.instance import PassportInstance

    assert "get_yaml_python_handlers" in inspect.getsource(DagsterInstance.get_handlers)
    assert "instance.get_handlers()" in inspect.getsource(DagsterLogManager.create)
    (tmp_path / "dagster.yaml").write_text(
        "instance_class:\n"
        "  module: passport_pipeline.execution.instance\n"
        "  class: PassportInstance\n"
    )
    with DagsterInstance.from_config(str(tmp_path)) as instance:
        assert type(instance) is PassportInstance
        assert type(DagsterInstance.from_ref(instance.get_ref())) is PassportInstance
        assert instance.get_yaml_python_handlers() is instance.get_yaml_python_handlers()
