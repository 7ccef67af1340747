"""The thread executor: every step in a thread of the run process.

A cover step waits on the image model for up to two minutes and computes for milliseconds; a
process per step (Dagster's multiprocess executor) spends more time and memory starting the
process than the step spends working. Here the run process opens the run's execution context once
(resources and the run's log manager, as Dagster's in-process executor does) and runs each step's
own Dagster event sequence in a thread, up to ``max_concurrent`` at once. Dagster's
``ActiveExecution`` (``dagster_internals.ACTIVE_EXECUTION_CALLS``) still decides which step runs
next: the instance's pools (``gemini``), ``RetryPolicy`` delays, dynamic mapping, skips and the
step dependency config are its, unchanged.

Why the step threads never set up logging: Dagster builds a log manager with
``DagsterLogManager.create``, which calls ``logging.config.dictConfig`` (for the instance's
``python_logs`` handlers, ``DagsterInstance.get_yaml_python_handlers``). Building one per step,
from concurrent threads, deadlocked (dictConfig closes every handler of the process while other
threads hold handler locks). Steps here take their log manager from the run's with
``for_step`` (``with_tags``), which builds no handler: dictConfig runs once per run, in the run's
thread, before any step thread exists.

Stopping: a thread cannot be killed, nor safely interrupted (``stop_signal.py`` says
why). On Ctrl-C or Terminate the executor stops launching steps and sets the run's stop event:
no step starts a new paid call, a call in flight finishes and its cover is stored (bounded by the
client's per-attempt deadline), and a step that would have called the model ends canceled
(``covers/cover_step.py``). The run then ends as interrupted.

Python log records (the instance's managed loggers) are recorded for the step whose thread
wrote them (``dagster_internals.confine_step_logs_to_this_thread``).
"""

from __future__ import annotations

import os
import queue
import threading
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field

from dagster import DagsterEvent, DagsterExecutionInterruptedError, Executor
from dagster_shared.error import SerializableErrorInfo

from passport_pipeline import stop_signal
from passport_pipeline.dagster_internals import (
    ExecuteRunWithPlanIterable,
    InstanceConcurrencyContext,
    PlanExecutionContextManager,
    confine_step_logs_to_this_thread,
    dagster_event_sequence_for_step,
    op_hooks_of,
    step_crashed_event,
)

# The longest the run thread waits for a step event before it looks for a stop request.
POLL_S = 0.5


class ThreadExecutor(Executor):
    """Runs each step of the plan in a thread of the run process (see the module docstring)."""

    def __init__(self, retries, step_dependency_config, max_concurrent: int, tag_limits=None):
        self._retries = retries
        self._step_dependency_config = step_dependency_config
        self._max_concurrent = max_concurrent
        self._tag_limits = tag_limits or []

    @property
    def retries(self):
        return self._retries

    @property
    def step_dependency_config(self):
        return self._step_dependency_config

    def execute(self, plan_context, execution_plan) -> Iterator[DagsterEvent]:
        plan_context.log.info(
            f"Executing steps in threads of the run process (pid: {os.getpid()}), "
            f"{self._max_concurrent} at most at once"
        )
        # The run's execution context, opened once: resources and the run's log manager.
        context_manager = PlanExecutionContextManager(
            job=plan_context.job,
            retry_mode=plan_context.retry_mode,
            execution_plan=plan_context.execution_plan,
            run_config=plan_context.run_config,
            dagster_run=plan_context.dagster_run,
            instance=plan_context.instance,
            raise_on_error=plan_context.raise_on_error,
            output_capture=plan_context.output_capture,
            step_dependency_config=self._step_dependency_config,
        )
        yield from ExecuteRunWithPlanIterable(
            execution_plan=plan_context.execution_plan,
            iterator=self._execute_in_threads,
            execution_context_manager=context_manager,
        )

    def _execute_in_threads(self, job_context, execution_plan) -> Iterator[DagsterEvent]:
        _refuse_hooks(job_context, execution_plan)
        with (
            InstanceConcurrencyContext(job_context.instance, job_context.dagster_run) as claims,
            execution_plan.start(
                retry_mode=self._retries,
                max_concurrent=self._max_concurrent,
                tag_concurrency_limits=self._tag_limits,
                instance_concurrency_context=claims,
                step_dependency_config=self._step_dependency_config,
            ) as active,
        ):
            yield from _Loop(self, job_context, active).run()


@dataclass
class _Running:
    thread: threading.Thread
    step_context: object
    ended: bool = False  # its final event (success, failure, up for retry) was seen


@dataclass
class _Loop:
    """The run thread's loop: launch steps as Dagster allows, relay their events, stop."""

    executor: ThreadExecutor
    job_context: object
    active: object
    events: queue.Queue = field(default_factory=queue.Queue)
    running: dict[str, _Running] = field(default_factory=dict)
    stopping: bool = False
    stop: threading.Event = field(default_factory=threading.Event)
    changed: bool = True  # something happened that may let another step start

    def run(self) -> Iterator[DagsterEvent]:
        active = self.active
        while (not self.stopping and not active.is_complete) or self.running:
            if not self.stopping and active.check_for_interrupts():
                self._stop()
            if not self.stopping:
                yield from self._launch()
            yield from self._relay(timeout=self._wait_s())
            yield from self._reap()
            yield from active.plan_events_iterator(self.job_context)
        if self.stopping:
            raise DagsterExecutionInterruptedError(
                "the run was stopped; its running steps have ended"
            )

    def _wait_s(self) -> float:
        if self.changed and not self.stopping:
            return 0
        ready_in = self.active.sleep_interval()
        return min(POLL_S, ready_in) if ready_in > 0 else POLL_S

    def _launch(self) -> Iterator[DagsterEvent]:
        room = self.executor._max_concurrent - len(self.running)
        due = self.changed or self.active.sleep_interval() <= 0
        self.changed = False
        if room <= 0 or not due:
            return
        steps = self.active.get_steps_to_execute(limit=room)
        yield from self.active.concurrency_event_iterator(self.job_context)
        for step in steps:
            step_context = self.job_context.for_step(step, self.active.get_known_state())
            thread = threading.Thread(
                target=_run_step,
                args=(step.key, step_context, self.events, self.stop),
                name=f"step {step.key}",
                daemon=True,
            )
            self.running[step.key] = _Running(thread, step_context)
            thread.start()

    def _relay(self, timeout: float) -> Iterator[DagsterEvent]:
        """Every step event queued so far (waiting up to ``timeout`` for the first one)."""
        try:
            batch = [self.events.get(timeout=timeout) if timeout > 0 else self.events.get_nowait()]
        except queue.Empty:
            return
        while True:
            try:
                batch.append(self.events.get_nowait())
            except queue.Empty:
                break
        for step_key, item in batch:
            if isinstance(item, SerializableErrorInfo):
                yield from self._crashed(step_key, item)
                continue
            yield item
            self.active.handle_event(item)
            if item.is_step_success or item.is_step_failure or item.is_step_up_for_retry:
                self.running[step_key].ended = True
            self.changed = True

    def _reap(self) -> Iterator[DagsterEvent]:
        finished = [key for key, run in self.running.items() if not run.thread.is_alive()]
        if not finished:
            return
        yield from self._relay(timeout=0)  # what they queued before they ended
        for key in finished:
            del self.running[key]
            self.active.verify_complete(self.job_context, key)
        self.changed = True

    def _crashed(self, step_key: str, error: SerializableErrorInfo) -> Iterator[DagsterEvent]:
        # Dagster itself failed outside the step's own error handling: the step fails (or is
        # retried by its policy), as the multiprocess executor does for a crashed step process.
        running = self.running[step_key]
        if running.ended:
            return
        event = step_crashed_event(
            self.executor, running.step_context, error, self.active.get_known_state()
        )
        yield event
        self.active.handle_event(event)
        running.ended = True

    def _stop(self) -> None:
        self.stopping = True
        self.active.mark_interrupted()
        self.stop.set()
        running = sum(1 for run in self.running.values() if not run.ended)
        self.job_context.log.warning(
            f"Thread executor: stop requested; no new step or model call starts, and the "
            f"{running} running step(s) end when their current call returns (at most the "
            "model's per-attempt deadline)"
        )


def _run_step(step_key: str, step_context, events: queue.Queue, stop: threading.Event) -> None:
    stop_signal.carry(stop)
    try:
        confine_step_logs_to_this_thread(step_context.log)
        for event in dagster_event_sequence_for_step(step_context):
            events.put((step_key, event))
    except (DagsterExecutionInterruptedError, KeyboardInterrupt):
        pass  # the step's failure event is already out (Dagster emits it, then re-raises)
    except BaseException as error:
        exception = traceback.TracebackException.from_exception(error)
        events.put((step_key, SerializableErrorInfo.from_traceback(exception)))


def _refuse_hooks(job_context, execution_plan) -> None:
    # Dagster runs op hooks in its in-process loop (a private helper); this executor does not.
    job_def = job_context.job_def
    for step in execution_plan.get_all_steps_in_topo_order():
        if op_hooks_of(job_def, step.node_handle):
            raise NotImplementedError(
                f"the thread executor does not run op hooks ({step.key} has some): use "
                "PASSPORT_EXECUTOR=multiprocess, or a run-status sensor instead of the hook"
            )
