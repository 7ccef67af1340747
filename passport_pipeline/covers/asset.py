"""The month's covers: a graph-backed asset (the month's users → one cover step per user →
record the month), partitioned by month, and the job that materializes it."""

from __future__ import annotations

from dagster import (
    AssetsDefinition,
    ConfigMapping,
    PartitionsDefinition,
    RetryPolicy,
    define_asset_job,
    graph_asset,
)

from passport_pipeline.covers.cover_step import generate_cover
from passport_pipeline.covers.names import COVERS_ASSET, JOB_NAME
from passport_pipeline.covers.partitions import monthly_partitions
from passport_pipeline.covers.plan import month_users
from passport_pipeline.covers.record import record_month


def build_covers_asset(
    retry_policy: RetryPolicy, partitions: PartitionsDefinition | None = None
) -> AssetsDefinition:
    """The month's covers as one partitioned asset (by default from 2024-01), with the retry
    policy of the definitions.

    The policy covers the steps that talk to outside systems: a database blip or a model that is
    briefly down is retried; permanent failures raise ``Failure(allow_retries=False)``."""
    cover_step = generate_cover.with_retry_policy(retry_policy)
    users_step = month_users.with_retry_policy(retry_policy)

    @graph_asset(
        name=COVERS_ASSET,
        partitions_def=partitions or monthly_partitions(),
        group_name="passports",
        # Run config stays one level deep: ops: {passport_covers: {config: {user_ids: [3, 7]}}}.
        config=ConfigMapping(
            config_fn=_month_users_config, config_schema=month_users.config_schema
        ),
    )
    def passport_covers():
        """A month's passport covers: one new cover for each user who visited places that month,
        stored and linked to the user's passport. Materializing a month draws the covers that
        are not stored yet (never paying twice) and records the month's summary."""
        plan, users = users_step()
        return record_month(plan, users.map(cover_step).collect())

    return passport_covers


def _month_users_config(config: dict) -> dict:
    return {"month_users": {"config": config}}


# Runs of the job share one lane in the run queue: months of a backfill run one after another,
# each at the pool's full width.
covers_job = define_asset_job(
    JOB_NAME,
    selection=[COVERS_ASSET],
    tags={"passport/lane": "covers"},
    description="Every month, a new passport cover for each user who visited places that month.",
)
