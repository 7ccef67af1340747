"""What a run's process does around its steps, whatever executor runs them.

Every executor of the code location (threads, multiprocess, celery) wraps Dagster's own in
``DutifulExecutor``: before any step the run may be turned away (one run of a month at a time);
while the steps run, the run's process is recorded, pool slots held by dead runs are reported
(``run_health``) and the run's progress is kept on the run page; when the run stops part-way, the
users whose step never started are recorded, so that "Re-execute from failure" covers them.

What those duties *mean* for a month is the covers' business (``covers/run_duties.py``): the
executors take them as a ``RunDuties`` from ``definitions.py``, so this layer never imports the
covers.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from dagster import DagsterEvent, DagsterInstance, Executor

from passport_pipeline.execution.periodically import periodically
from passport_pipeline.execution.run_health import watched_run_process

# How often the run page's progress is brought up to date while a run executes.
PROGRESS_INTERVAL_S = 15


class RunDuties(Protocol):
    """The run process's part of a run, decided above the executors."""

    def claim(self, instance: DagsterInstance, run_id: str) -> None:
        """Before any step: return to go ahead, raise to turn the run away."""

    def publish_progress(self, instance: DagsterInstance, run_id: str) -> str | None:
        """Put the run's progress on the run; the line to log when it changed (None: none)."""

    def record_stop(self, instance: DagsterInstance, run_id: str) -> None:
        """After the run stopped part-way: record what never started."""


class NoDuties:
    """A run with nothing around its steps (a job of no month, as the executors' own tests)."""

    def claim(self, instance: DagsterInstance, run_id: str) -> None:
        return None

    def publish_progress(self, instance: DagsterInstance, run_id: str) -> str | None:
        return None

    def record_stop(self, instance: DagsterInstance, run_id: str) -> None:
        return None


class DutifulExecutor(Executor):
    """Dagster's executor ``inner``, with the run process's ``duties`` around its steps."""

    def __init__(self, inner: Executor, duties: RunDuties):
        self._inner = inner
        self._duties = duties

    @property
    def retries(self):
        return self._inner.retries

    @property
    def step_dependency_config(self):
        return self._inner.step_dependency_config

    def app_args(self) -> dict:
        # dagster-celery's step loop asks the run's executor for its Celery app settings.
        return self._inner.app_args()

    def execute(self, plan_context, execution_plan) -> Iterator[DagsterEvent]:
        self._duties.claim(plan_context.instance, plan_context.run_id)
        with watched_run_process(plan_context), _publishing_progress(plan_context, self._duties):
            try:
                yield from self._inner.execute(plan_context, execution_plan)
            except BaseException:
                # Ctrl-C, Terminate, or the executor itself failing: its steps have all ended.
                try:
                    self._duties.record_stop(plan_context.instance, plan_context.run_id)
                except Exception as error:  # the stop itself must still reach Dagster
                    plan_context.log.warning(
                        f"could not record the users whose step never started ({error}); the "
                        "failed-month sensor and `python -m passport_pipeline.cli.reexecute` will"
                    )
                raise


@contextmanager
def _publishing_progress(plan_context, duties: RunDuties) -> Iterator[None]:
    """While the run executes, keep its progress on the run, and a line in the run's log
    whenever it changed (at most every PROGRESS_INTERVAL_S). The run page's header shows no
    custom tag; its event log is where an operator reads the run."""
    said = [""]

    def publish() -> None:
        line = duties.publish_progress(plan_context.instance, plan_context.run_id)
        if line and line != said[0]:
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
