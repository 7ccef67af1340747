"""Each Dagster internal we rely on is where ``dagster_internals`` expects it, and still needed.

A Dagster upgrade that moves or changes one fails here, by name, before it can break a run."""

from __future__ import annotations

import importlib.util
import inspect
import logging

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


def test_the_thread_executors_building_blocks_are_where_they_were():
    # The thread executor copies dagster/_core/executor/in_process.py with its step loop in
    # threads: each piece must still take what the copy passes it.
    run_with_plan = inspect.signature(dagster_internals.ExecuteRunWithPlanIterable)
    assert {"execution_plan", "iterator", "execution_context_manager"} <= set(
        run_with_plan.parameters
    )
    context_manager = inspect.signature(dagster_internals.PlanExecutionContextManager)
    assert {
        "job",
        "retry_mode",
        "execution_plan",
        "run_config",
        "dagster_run",
        "instance",
        "raise_on_error",
        "output_capture",
        "step_dependency_config",
    } <= set(context_manager.parameters)
    claims = inspect.signature(dagster_internals.InstanceConcurrencyContext)
    assert list(claims.parameters)[:2] == ["instance", "dagster_run"]
    step = inspect.signature(dagster_internals.dagster_event_sequence_for_step)
    assert next(iter(step.parameters)) == "step_context"
    from dagster._core.execution.plan.plan import ExecutionPlan

    start = inspect.signature(ExecutionPlan.start).parameters
    assert {"retry_mode", "max_concurrent", "instance_concurrency_context"} <= set(start)


def test_a_step_log_handler_still_overrides_filter_and_still_joins_the_managed_loggers():
    # confine_step_logs_to_this_thread wraps DagsterLogHandler.filter because the class
    # overrides logging's filter (addFilter would be ignored), and it matters because a step
    # adds that handler to the managed loggers while its op runs.
    from dagster._core.log_manager import DagsterLogManager

    handler_class = dagster_internals.DagsterLogHandler
    assert handler_class.filter is not logging.Handler.filter
    source = inspect.getsource(DagsterLogManager.begin_python_log_capture)
    assert "addHandler(self._dagster_handler)" in source


def test_the_run_configures_logging_once_and_steps_do_not():
    # Why steps in threads never call logging.config.dictConfig: only DagsterLogManager.create
    # reads the instance's handlers (which runs dictConfig); a step's log manager is with_tags.
    from dagster._core.execution.context.system import PlanExecutionContext
    from dagster._core.log_manager import DagsterLogManager

    assert "dictConfig" in inspect.getsource(DagsterInstance.get_yaml_python_handlers)
    assert "get_handlers" in inspect.getsource(DagsterLogManager.create)
    assert "get_handlers" not in inspect.getsource(DagsterLogManager.with_tags)
    assert "with_tags" in inspect.getsource(PlanExecutionContext.for_step)


def test_the_instance_class_still_fits_dagsters_hooks(tmp_path):
    # PassportInstance replaces the one method that runs dictConfig per step: it must still be
    # the method the step's log manager calls, and a yaml naming the class must still load.
    from dagster._core.log_manager import DagsterLogManager

    from passport_pipeline.instance import PassportInstance

    assert "get_yaml_python_handlers" in inspect.getsource(DagsterInstance.get_handlers)
    assert "instance.get_handlers()" in inspect.getsource(DagsterLogManager.create)
    (tmp_path / "dagster.yaml").write_text(
        "instance_class:\n  module: passport_pipeline.instance\n  class: PassportInstance\n"
    )
    with DagsterInstance.from_config(str(tmp_path)) as instance:
        assert type(instance) is PassportInstance
        assert type(DagsterInstance.from_ref(instance.get_ref())) is PassportInstance
        assert instance.get_yaml_python_handlers() is instance.get_yaml_python_handlers()
