"""The Dagster internals this project uses, each because no public API does the job.

Every name imported here is checked by ``passport_pipeline_tests/test_dagster_internals.py``:
a Dagster upgrade that moves or changes one fails that test by name instead of breaking a
run. ``dagster`` is pinned in ``pyproject.toml``; read this module before raising the pin.
"""

from __future__ import annotations

import logging
import threading

from dagster import DagsterEvent, DagsterEventType, DagsterInstance

# The thread executor (execution/thread_executor.py) is Dagster's in-process executor with its
# step loop run in threads. Dagster has no public API for an executor that runs steps itself:
# - ExecuteRunWithPlanIterable + PlanExecutionContextManager open the run's execution context
#   (resources, log manager) exactly as dagster/_core/executor/in_process.py does;
# - InstanceConcurrencyContext claims the instance's pool slots, as every Dagster executor does
#   around its ActiveExecution (which the public ``ExecutionPlan.start`` builds);
# - dagster_event_sequence_for_step runs one step with Dagster's own handling of retry
#   requests, Failure and interrupts, as inner_plan_execution_iterator does for each step.
from dagster._core.execution.api import ExecuteRunWithPlanIterable
from dagster._core.execution.context_creation_job import PlanExecutionContextManager
from dagster._core.execution.plan.execute_plan import dagster_event_sequence_for_step

# A step failure event for a step that never ran has no public constructor:
# ``DagsterEvent.step_failure_event`` needs the step's live execution context. ``ErrorSource``
# also tells progress a stop (INTERRUPT: never started, or cut by Ctrl-C) from a failure.
from dagster._core.execution.plan.handle import StepHandle
from dagster._core.execution.plan.instance_concurrency_context import InstanceConcurrencyContext
from dagster._core.execution.plan.objects import ErrorSource, StepFailureData
from dagster._core.execution.plan.state import KnownExecutionState

# A custom ``instance_class`` (dagster.yaml) must answer ``config_defaults(base_dir)`` when Dagster
# builds an InstanceRef (``InstanceRef.from_dir``); DagsterInstance has none of its own, and
# InstanceRef's is the default every stock instance gets (passport_pipeline/instance.py).
from dagster._core.instance.ref import InstanceRef as InstanceRef

# A step's log handler, whose ``filter`` we narrow to the step's own thread (below).
from dagster._core.log_manager import DagsterLogHandler

# The Launchpad's scaffold: the webserver's ``rootDefaultYaml`` is this function of the job's
# config schema snapshot (dagster_graphql/schema/run_config.py). Tests check that what it
# renders validates, for every image model (no public API renders it).
from dagster._core.snap.snap_to_yaml import default_values_yaml_from_type_snap

# The embedded instance's storage is built from these (execution/sqlite_storage.py): the class
# data Dagster builds storages from, and where DagsterSqliteStorage keeps a run's event log.
from dagster._core.storage.event_log import SqliteEventLogStorage

# The pool-slot claim (execution/instance_storage.py) overrides this method of both event-log
# storages, writes the very rows of this table and returns the very values Dagster's own claim
# does (an upstream race, see that module). A renamed method would silently stop being
# overridden: the tripwire calls the storage's public claim and checks that ours ran.
from dagster._core.storage.event_log.schema import ConcurrencySlotsTable
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage
from dagster._core.storage.sqlite_storage import (
    _event_logs_directory as sqlite_event_logs_directory,
)
from dagster._serdes import ConfigurableClassData
from dagster._utils.concurrency import ConcurrencySlotStatus
from dagster_shared.error import SerializableErrorInfo

CLAIM_SLOT_METHOD = "_claim_concurrency_slot"

# What the thread executor (execution/thread_executor.py) calls on the ``ActiveExecution`` that
# the public ``ExecutionPlan.start`` returns (dagster/_core/execution/plan/active.py): the class
# is private, and these are the calls Dagster's own executors make on it. The tripwires run a
# job on the thread executor (retries, a failure, a mapped fan-out, a pool) and check what it
# yields.
ACTIVE_EXECUTION_CALLS = (
    "check_for_interrupts",
    "concurrency_event_iterator",
    "get_known_state",
    "get_steps_to_execute",
    "handle_event",
    "is_complete",
    "mark_interrupted",
    "plan_events_iterator",
    "sleep_interval",
    "verify_complete",
)

__all__ = [
    "ACTIVE_EXECUTION_CALLS",
    "CLAIM_SLOT_METHOD",
    "STEP_WORKER_MODULES",
    "ConcurrencySlotStatus",
    "ConcurrencySlotsTable",
    "ConfigurableClassData",
    "DagsterSqliteStorage",
    "ErrorSource",
    "ExecuteRunWithPlanIterable",
    "InstanceConcurrencyContext",
    "InstanceRef",
    "PlanExecutionContextManager",
    "SqliteEventLogStorage",
    "confine_step_logs_to_this_thread",
    "dagster_event_sequence_for_step",
    "default_values_yaml_from_type_snap",
    "from_failure_step_keys",
    "op_hooks_of",
    "replace_storage_engine",
    "report_step_never_started",
    "sqlite_event_logs_directory",
    "step_crashed_event",
    "step_stopped_event",
]

# Dagster's step worker, loaded by every forked step before our code runs (measured by listing
# sys.modules at the start of a step against those of the parent). The executor preloads them
# into its forkserver; a module renamed by an upgrade would fail the preload silently into
# slow steps, so the test imports each one.
STEP_WORKER_MODULES = (
    "dagster._core.executor.child_process_executor",
    "dagster._core.executor.multiprocess",
    "dagster._core.instance.factory",
    "dagster._cli.api",
)


def from_failure_step_keys(instance: DagsterInstance, run) -> list[str]:
    """The steps that Re-execute → From failure runs for ``run``: the UI's button, the run retry
    daemon and ``ReexecutionOptions.from_failure`` all plan them with this function of Dagster's,
    from the run's event log as it was left."""
    steps, _ = KnownExecutionState.build_resume_retry_reexecution(instance, run)
    return list(steps)


def report_step_never_started(
    instance: DagsterInstance, run_id: str, job_name: str, step_key: str, message: str
) -> None:
    """Write a STEP_FAILURE for a step of a finished run that never started.

    Dagster 1.13's re-execution from failure (``_derive_state_of_past_run`` in
    ``dagster/_core/execution/plan/state.py``, used by the UI's button, the run retry daemon and
    ``ReexecutionOptions.from_failure``) retries a mapped step only if the parent run's event
    log mentions it; a mapping key whose step never started is silently dropped (upstream issue
    dagster-io/dagster#30248). Recording the step as failed makes Dagster's own logic retry it.
    """
    event = DagsterEvent(
        event_type_value=DagsterEventType.STEP_FAILURE.value,
        job_name=job_name,
        step_handle=StepHandle.parse_from_key(step_key),
        step_kind_value="COMPUTE",
        event_specific_data=StepFailureData(
            error=SerializableErrorInfo(message, stack=[], cls_name=None),
            user_failure_data=None,
            error_source=ErrorSource.INTERRUPT,
        ),
        message=f'Step "{step_key}" never started: {message}',
    )
    instance.report_dagster_event(event, run_id, log_level=logging.ERROR)


def confine_step_logs_to_this_thread(step_log) -> None:
    """Make a step's log handler take Python log records from the calling thread only.

    While a step's op runs, Dagster adds the step's ``DagsterLogHandler`` to the instance's
    managed Python loggers (``DagsterLogManager.begin_python_log_capture``), so that their
    records land in the step's event log. That assumes one step per process: with steps in
    threads, every running step's handler hangs on the same loggers and the first one added
    records every step's lines as its own. ``DagsterLogHandler`` overrides ``filter`` (so
    ``addFilter`` is ignored): the narrowing wraps that method on this one handler instance.
    Call it from the step's thread, with ``step_context.log``.
    """
    thread = threading.get_ident()
    for handler in step_log.handlers:
        if isinstance(handler, DagsterLogHandler):
            dagster_filter = handler.filter

            def only_this_thread(record: logging.LogRecord, _dagster_filter=dagster_filter):
                return record.thread == thread and _dagster_filter(record)

            handler.filter = only_this_thread


def step_crashed_event(executor, step_context, error: SerializableErrorInfo, known_state):
    """The STEP_FAILURE (or STEP_UP_FOR_RETRY, under the step's RetryPolicy) for a step that
    Dagster's own step loop could not end: what the multiprocess executor emits for a crashed
    step process (``Executor.log_failure_or_retry_event_after_error``, undocumented)."""
    return executor.log_failure_or_retry_event_after_error(step_context, error, known_state)


def step_stopped_event(step_context, message: str, cause: SerializableErrorInfo | None):
    """A STEP_FAILURE whose source is an interrupt (a stop, not the step's own error): what
    Dagster writes for a step a Ctrl-C cut outside its op's body. ``StepFailureData`` and
    ``ErrorSource`` are private."""
    return DagsterEvent.step_failure_event(
        step_context=step_context,
        step_failure_data=StepFailureData(
            error=SerializableErrorInfo(message, stack=[], cls_name=None, cause=cause),
            user_failure_data=None,
            error_source=ErrorSource.INTERRUPT,
        ),
    )


def op_hooks_of(job_def, node_handle) -> set:
    """The op hooks that apply to one node of a job (``JobDefinition.get_all_hooks_for_handle``,
    undocumented): the thread executor refuses jobs with any, as it does not run them."""
    return set(job_def.get_all_hooks_for_handle(node_handle))


def replace_storage_engine(storage, engine) -> None:
    """Make a dagster-postgres storage connect through ``engine`` (a pooled one) instead of the
    ``NullPool`` engine it built, as dagster-postgres's own ``optimize_for_webserver`` does."""
    stock = storage._engine
    storage._engine = engine
    stock.dispose()


def storage_engine(storage):
    """The SQLAlchemy engine a dagster-postgres storage connects through."""
    return storage._engine


def storage_token_provider(storage):
    """The token provider a dagster-postgres storage was built with (for a new engine)."""
    return storage._token_provider
