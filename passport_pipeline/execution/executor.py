"""The run executors: up to 50 cover steps at once, in threads of the run process (``threads``)
or each in a forked process that starts warm (``multiprocess``); both with the run process's
duties of ``run_hooks.CoversExecutor``.

A step process is cheap only if it imports nothing heavy itself. Dagster's forkserver start
method forks every step from one server process, and ``preload_modules`` are imported into that
server once. Dagster's default preload is the job's module alone; the modules below are the rest
of what a cover step loads — the step worker's own Dagster modules, and what each configured
resource imports lazily on first use (its SQLAlchemy dialect, the S3 client, the renderer).
"""

from __future__ import annotations

from collections.abc import Mapping

from dagster import (
    ConfigurableResource,
    Executor,
    ExecutorDefinition,
    executor,
    in_process_executor,
    multiple_process_executor_requirements,
    multiprocess_executor,
)

from passport_pipeline.dagster_internals import STEP_WORKER_MODULES
from passport_pipeline.execution.run_hooks import NO_HOOKS, CoversExecutor, RunHooks
from passport_pipeline.execution.thread_executor import ThreadExecutor
from passport_pipeline.settings import Settings

FREEZE_MODULE = "passport_pipeline.execution.forkserver_freeze"
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
