"""What the run process does for the covers around its steps (``CoversExecutor``, around every
executor's own), handed in from above.

The executors (``execution/``) sit below the covers (``covers/``) and must not import them; the
covers' decisions reach the run process as these three callables, which ``definitions.py`` wires
to ``covers.one_run``, ``covers.progress`` and ``covers.unstarted_steps``. Each takes the
instance and the run's id.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from dagster import (
    DagsterEvent,
    DagsterEventType,
    DagsterExecutionInterruptedError,
    DagsterInstance,
    DagsterRunStatus,
    Executor,
)

from passport_pipeline.dagster_internals import step_stopped_event
from passport_pipeline.execution.periodically import periodically
from passport_pipeline.execution.run_health import watched_run_process

# How often the run page's progress is brought up to date while a month runs.
PROGRESS_INTERVAL_S = 15


def _nothing(instance: DagsterInstance, run_id: str) -> None:
    return None


@dataclass(frozen=True)
class RunHooks:
    # Before any step: go ahead, or raise to stop the run (one run of a month at a time).
    before_steps: Callable[[DagsterInstance, str], None] = _nothing
    # The run's progress as one line, published on the run (None: nothing to publish).
    progress: Callable[[DagsterInstance, str], str | None] = _nothing
    # After a stop (Ctrl-C, Terminate, the executor failing): record what never started.
    after_stop: Callable[[DagsterInstance, str], object] = _nothing


NO_HOOKS = RunHooks()


class CoversExecutor(Executor):
    """Dagster's executor, plus, in the run process: the run goes ahead only if its hooks let it
    (``hooks.before_steps``: one run of a month at a time); the run's process is recorded and
    pool slots held by dead runs are reported while the run waits (``run_health``); its progress
    is kept on the run (``hooks.progress``); and when the run stops part-way, the users whose
    step never started are recorded as failed (``hooks.after_stop``), so that "Re-execute from
    failure" covers them."""

    def __init__(self, inner: Executor, hooks: RunHooks):
        self._inner, self._hooks = inner, hooks

    @property
    def retries(self):
        return self._inner.retries

    @property
    def step_dependency_config(self):
        return self._inner.step_dependency_config

    def execute(self, plan_context, execution_plan) -> Iterator[DagsterEvent]:
        # One run of a month at a time: before any step (a re-execution runs no month_users).
        self._hooks.before_steps(plan_context.instance, plan_context.run_id)
        # The progress is published once more on the way out, after the stop is recorded.
        publishing = _publishing_progress(plan_context, self._hooks)
        failed: set[str] = set()
        interrupted = False
        with watched_run_process(plan_context), publishing:
            try:
                for event in self._inner.execute(plan_context, execution_plan):
                    interrupted = interrupted or _is_interruption(event)
                    if interrupted and event.event_type is DagsterEventType.STEP_UP_FOR_RETRY:
                        event = _stopped_instead_of_retried(plan_context, execution_plan, event)
                    if event.is_step_failure:
                        failed.add(event.step_key)
                    yield event
            except BaseException as stop:
                # Ctrl-C, Terminate, or the executor itself failing: its steps have all ended.
                try:
                    self._hooks.after_stop(plan_context.instance, plan_context.run_id)
                except Exception as error:  # the stop itself must still reach Dagster
                    plan_context.log.warning(
                        f"could not record the users whose step never started ({error}); the "
                        "failed-month sensor and `python -m passport_pipeline.cli.reexecute` will"
                    )
                if not _terminated_by_operator(plan_context, stop):
                    raise
                # An operator's Terminate is an outcome, not an error: hand Dagster the run's
                # failed steps (the never-started ones were just stored) and end without the
                # interrupt, so the run ends CANCELED naming its failed steps, with no stack trace
                # of our own stop. With no failed step at all, Dagster would call the run a
                # success: then the interrupt goes up as it came.
                unseen = _stored_step_failures(plan_context, exclude=failed)
                if not failed and not unseen:
                    raise
                yield from unseen
                plan_context.log.info(
                    "run terminated by an operator; re-execute it from failure to finish its users"
                )


def _is_interruption(event: DagsterEvent) -> bool:
    """The executor's own record that it was told to stop (Ctrl-C, Terminate) and is passing
    the stop on to its steps (Dagster's multiprocess executor writes it)."""
    data = event.engine_event_data if event.event_type is DagsterEventType.ENGINE_EVENT else None
    return data is not None and "steps_interrupted" in (data.metadata or {})


def _stopped_instead_of_retried(plan_context, execution_plan, event: DagsterEvent) -> DagsterEvent:
    """A step that ended badly after its run was told to stop must not stay "up for retry" (the
    run retries nothing; the run page would show it waiting forever): its process was cut off
    starting or running, and Dagster's executor applied the step's RetryPolicy to the crash (and
    stored that event already). The failure that follows is what the step ends as: stopped,
    which "Re-execute from failure" runs again."""
    step = execution_plan.get_step_by_key(event.step_key)
    return step_stopped_event(
        plan_context.for_step(step),
        f"{event.step_key}: stopped: the run was stopped while this step's process was starting "
        "or running; nothing was retried. Re-execute the run from failure to finish it.",
        event.step_retry_data.error if event.step_retry_data else None,
    )


def _terminated_by_operator(plan_context, stop: BaseException) -> bool:
    """The run was interrupted because someone asked it to stop (Terminate: it is CANCELING)."""
    if not isinstance(stop, DagsterExecutionInterruptedError | KeyboardInterrupt):
        return False
    run = plan_context.instance.get_run_by_id(plan_context.run_id)
    return run is not None and run.status is DagsterRunStatus.CANCELING


def _stored_step_failures(plan_context, exclude: set[str]) -> list[DagsterEvent]:
    """The run's step failures already in its event log, but for the steps in ``exclude``."""
    entries = plan_context.instance.all_logs(
        plan_context.run_id, of_type=DagsterEventType.STEP_FAILURE
    )
    found: dict[str, DagsterEvent] = {}
    for entry in entries:
        event = entry.dagster_event
        if event is not None and event.step_key not in exclude:
            found.setdefault(event.step_key, event)
    return list(found.values())


@contextmanager
def _publishing_progress(plan_context, hooks: RunHooks) -> Iterator[None]:
    """While the run executes, keep its progress on the run: the tag, and a line in the run's
    log whenever it changed (at most every PROGRESS_INTERVAL_S). The run page's header shows no
    custom tag; its event log is where an operator reads the run."""
    said = [""]

    def publish() -> None:
        line = hooks.progress(plan_context.instance, plan_context.run_id)
        if line is not None and line != said[0]:
            said[0] = line
            plan_context.log.info(f"progress: {line}")

    def publish_quietly() -> None:
        try:
            publish()
        except Exception as error:  # progress is for people: it must never end a run
            plan_context.log.debug(f"progress publisher: {error!r}")

    # At once: a re-execution starts with its parent's tag, which is not the month's state.
    publish_quietly()
    try:
        with periodically(plan_context, PROGRESS_INTERVAL_S, "progress publisher", publish):
            yield
    finally:
        publish_quietly()  # once more on the way out, a stop included: the last word
