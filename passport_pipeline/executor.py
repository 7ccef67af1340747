"""The run executor: up to 50 cover steps at once, each in a forked process that starts warm.

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
    ExecutorDefinition,
    executor,
    multiple_process_executor_requirements,
    multiprocess_executor,
)

from passport_pipeline.run_health import RunProcessExecutor

# Dagster's step worker: loaded by every forked step before our code runs (measured by
# listing sys.modules at the start of a step against those of the parent).
STEP_WORKER_MODULES = (
    "dagster._core.executor.child_process_executor",
    "dagster._core.executor.multiprocess",
    "dagster._core.instance.factory",
    "dagster._cli.api",
)
FREEZE_MODULE = "passport_pipeline.forkserver_freeze"
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


@executor(
    name="multiprocess",
    config_schema=multiprocess_executor.config_schema,
    requirements=multiple_process_executor_requirements(),
)
def watched_multiprocess_executor(init_context):
    """Dagster's multiprocess executor; the run process also records itself and watches for
    pool slots held by dead runs (passport_pipeline.run_health)."""
    return RunProcessExecutor(multiprocess_executor.executor_creation_fn(init_context))


def covers_executor(
    max_concurrent: int, resources: Mapping[str, ConfigurableResource]
) -> ExecutorDefinition:
    return watched_multiprocess_executor.configured(
        {
            "max_concurrent": max_concurrent,
            "start_method": {"forkserver": {"preload_modules": step_preload_modules(resources)}},
        }
    )
