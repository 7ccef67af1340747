"""A launch of one month of the covers in process, as the schedule, the UI or a sensor makes it
(tests and bench/ share it)."""

from __future__ import annotations

from dagster import AssetsDefinition, DagsterInstance, materialize


def materialize_month(
    covers: AssetsDefinition,
    resources: dict,
    instance: DagsterInstance,
    month: str,
    run_config: dict | None = None,
    tags: dict | None = None,
):
    """The month's run; its result, whether it succeeded or not."""
    return materialize(
        [covers],
        resources=resources,
        instance=instance,
        partition_key=month,
        run_config=run_config,
        tags=tags,
        raise_on_error=False,
    )
