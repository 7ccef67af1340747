"""The run executors: up to 50 cover steps at once, in threads of the run process (``threads``)
or each in a forked process that starts warm (``multiprocess``); both with the run process's
duties of ``CoversExecutor``.

A step process is cheap only if it imports nothing heavy itself. Dagster's forkserver start
method forks every step from one server process, and ``preload_modules`` are imported into that
server once. Dagster's default preload is the job's module alone; the modules below are the rest
of what a cover step loads — the step worker's own Dagster modules, and what each configured
resource imports lazily on first use (its SQLAlchemy dialect, the S3 client, the renderer).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from dagster import (
    ConfigurableResource,
    DagsterEvent,
    DagsterEventType,
    DagsterExecutionInterruptedError,
    DagsterRunStatus,
    Executor,
    ExecutorDefinition,
    executor,
    in_process_executor,
    multiple_process_executor_requirements,
    multiprocess_executor,
)

from passport_pipeline.dagster_internals import STEP_WORKER_MODULES
from passport_pipeline.execution.run_health import periodically, watched_run_process
from passport_pipeline.execution.run_hooks import NO_HOOKS, RunHooks
from passport_pipeline.execution.thread_executor import ThreadExecutor
from passport_pipeline.settings import Settings

FREEZE_MODULE = "passport_pipeline.execution.forkserver_freeze"
# How often the run page's progress is brought up to date while a month runs.
PROGRESS_INTERVAL_S = 15
# Image decoders that Pillow registers on first open (every step checks its image).
IMAGE_CHECK_MODULES = ("PIL.PngImagePlugin", "PIL.JpegImagePlugin", "PIL.WebPImagePlugin")


def step_preload_modules(resources: Mapping[str, ConfigurableResource]) -> list[str]:
    """Everything a cover step imports, derived from the resources it is given."""
    modules = ["passport_pipeline.definitions", *STEP_WORKER_MODULES, *IMAGE_CHECK_MODULES]
    for resource in resources.values():
        step_modules = getattr(resource, "step_modules", None)
        if step_modules is not None:
            modules.extend(step_modules())
    # Last: freeze the heap that everything above loaded, so forked steps keep sharing it.
    modules.append(FREEZE_MODULE)
    return list(dict.fromkeys(modules))


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
        with watched_run_process(plan_context), publishing:
            try:
                for event in self._inner.execute(plan_context, execution_plan):
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


def multiprocess_executor_def(hooks: RunHooks = NO_HOOKS) -> ExecutorDefinition:
    """Each step in its own process (Dagster's multiprocess executor); see ``CoversExecutor``."""

    @executor(
        name="covers_multiprocess",
        config_schema=multiprocess_executor.config_schema,
        requirements=multiple_process_executor_requirements(),
    )
    def covers_multiprocess_executor(init_context) -> Executor:
        """Each step in its own process (Dagster's multiprocess executor), with the covers'
        duties in the run process."""
        return CoversExecutor(multiprocess_executor.executor_creation_fn(init_context), hooks)

    return covers_multiprocess_executor


# The multiprocess executor's settings that mean the same in threads (start_method does not).
_THREAD_CONFIG = {
    name: config_field
    for name, config_field in multiprocess_executor.config_schema.config_type.fields.items()
    if name in ("max_concurrent", "tag_concurrency_limits", "retries", "step_dependency_config")
}


def thread_executor_def(hooks: RunHooks = NO_HOOKS) -> ExecutorDefinition:
    """Each step in a thread of the run process (``thread_executor``); see ``CoversExecutor``."""

    @executor(name="covers_threads", config_schema=_THREAD_CONFIG)
    def covers_thread_executor(init_context) -> Executor:
        """Each step in a thread of the run process, with the covers' duties around them."""
        config = init_context.executor_config
        # Dagster's own reading of `retries` and `step_dependency_config` (its in-process one's).
        in_process = in_process_executor.executor_creation_fn(init_context)
        thread_executor = ThreadExecutor(
            retries=in_process.retries,
            step_dependency_config=in_process.step_dependency_config,
            max_concurrent=config.get("max_concurrent") or 50,
            tag_limits=config.get("tag_concurrency_limits"),
        )
        return CoversExecutor(thread_executor, hooks)

    return covers_thread_executor


def covers_executor(
    settings: Settings, resources: Mapping[str, ConfigurableResource], hooks: RunHooks
) -> ExecutorDefinition:
    """The executor ``PASSPORT_EXECUTOR`` names, ``PASSPORT_MAX_CONCURRENT_STEPS`` steps at once
    in a run, with the covers' ``hooks`` in its run process."""
    if settings.executor == "celery":  # imported only where celery is chosen
        from passport_pipeline.execution.celery_executor import covers_celery

        return covers_celery(settings, hooks)
    max_concurrent = settings.max_concurrent_steps
    if settings.executor == "threads":
        return thread_executor_def(hooks).configured({"max_concurrent": max_concurrent})
    return multiprocess_executor_def(hooks).configured(
        {
            "max_concurrent": max_concurrent,
            "start_method": {"forkserver": {"preload_modules": step_preload_modules(resources)}},
        }
    )
