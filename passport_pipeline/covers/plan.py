"""The asset's first step: the month to cover and its users, checked before anything is paid."""

import json
from dataclasses import dataclass

from dagster import Config, DynamicOut, DynamicOutput, Failure, OpExecutionContext, Out, Output, op
from pydantic import Field

from passport_pipeline.covers import batch, events
from passport_pipeline.covers.names import USERS_OUTPUT
from passport_pipeline.covers.one_run import MonthAlreadyRunning, claim_month
from passport_pipeline.domain.keys import WeakSecretError
from passport_pipeline.domain.month_status import (
    TAGGED_IDS,
    TOTAL_TAG,
    UNKNOWN_COUNT_TAG,
    UNKNOWN_USERS_TAG,
)
from passport_pipeline.domain.months import InvalidMonthError, Month
from passport_pipeline.domain.records import UserTask
from passport_pipeline.domain.summary import listed
from passport_pipeline.resources.app_db import AppDatabase
from passport_pipeline.resources.cover_keys import CoverKeys
from passport_pipeline.resources.image_model import ImageModel, PermanentImageModelError
from passport_pipeline.resources.image_store import ImageStore, ImageStoreUnusableError
from passport_pipeline.resources.pending_covers import PendingCovers


class MonthUsersConfig(Config):
    user_ids: list[int] | None = Field(
        default=None,
        description="Only these users (default: everyone with a visit in the month).",
    )
    force_regenerate: bool = Field(
        default=False,
        description="Call the image model even for users whose cover for the month is stored.",
    )
    # -- batch mode (PASSPORT_IMAGE_MODEL=gemini-batch; see covers/batch.py) --
    batch_name: str | None = Field(
        default=None,
        description="Store the answers of this finished Gemini batch (set by the batch sensor).",
    )
    direct: bool = Field(
        default=False,
        description="In batch mode, call the model directly (full price) instead of a batch.",
    )


@dataclass(frozen=True)
class MonthPlan:
    month: str
    user_ids: list[int]
    unknown_user_ids: list[int]
    # Only listed users, not the month's: such a run never marks the month done.
    partial: bool = False


def month_of_run(context: OpExecutionContext) -> Month:
    """The month the run covers, from its partition key; a Failure that is not retried when the
    run has no partition or it names no month exactly."""
    if not context.has_partition_key:
        raise Failure(
            "this job runs for one month: launch it for a partition, e.g. "
            '--tags \'{"dagster/partition": "2026-10"}\'',
            allow_retries=False,
        )
    try:
        month = Month.parse(context.partition_key)
    except InvalidMonthError as error:
        raise Failure(f"partition key: {error}", allow_retries=False) from None
    if context.partition_key != month.key:
        # "2026-10 " would run the month under a tag no view of the month ever finds.
        raise Failure(
            f"partition key: {context.partition_key!r} is not written as a month key: "
            f"launch it as {month.key!r}",
            allow_retries=False,
        )
    partitions = context.assets_def.partitions_def
    if not partitions.has_partition_key(month.key):
        keys = partitions.get_partition_keys()
        raise Failure(
            f"partition key: {month} is not a month this job covers: months run from "
            f"{keys[0]} to the last finished month, {keys[-1]}",
            allow_retries=False,
        )
    return month


# No plan when the month's users were submitted as a Gemini batch: the run ends there and
# record_month is skipped; the batch's results run records the month.
@op(out={"plan": Out(MonthPlan, is_required=False), USERS_OUTPUT: DynamicOut(UserTask)})
def month_users(
    context: OpExecutionContext,
    config: MonthUsersConfig,
    app_db: AppDatabase,
    image_model: ImageModel,
    image_store: ImageStore,
    cover_keys: CoverKeys,
    pending_covers: PendingCovers,
):
    """Find the month's users (a visit in the month, Seoul calendar) or take the listed ones,
    check that the image model, the store and the key secret can be used at all, and fan out
    one cover step per user."""
    month = month_of_run(context)
    try:  # the executor checked already, unless this run is on Dagster's in-process executor
        claim_month(context.instance, context.run_id)
    except MonthAlreadyRunning as error:
        raise Failure(str(error), allow_retries=False) from None
    try:
        image_model.preflight()
    except PermanentImageModelError as error:
        # A wrong key or model: stop here, before a single paid call, and do not retry.
        raise Failure(str(error), metadata={"reason": error.reason}, allow_retries=False) from None
    try:
        image_store.preflight()
    except ImageStoreUnusableError as error:
        # Every image paid for would have nowhere to go.
        raise Failure(str(error), allow_retries=False) from None
    try:
        cover_keys.check()
    except (WeakSecretError, ValueError) as error:
        # Every user step would fail the same way: stop before the fan-out, say what to fix.
        raise Failure(str(error), allow_retries=False) from None
    unknown: list[int] = []
    if config.user_ids is None:
        user_ids = app_db.month_user_ids(month)
    else:
        requested = list(dict.fromkeys(config.user_ids))
        known = app_db.existing_user_ids(requested)
        user_ids = [user_id for user_id in requested if user_id in known]
        unknown = [user_id for user_id in requested if user_id not in known]
        if unknown:
            context.log.warning(
                f"skipping {len(unknown)} user ids that do not exist: {listed(unknown)}"
            )
    batch_name = config.batch_name
    if batch_name is None and batch.uses_batch(image_model) and not config.direct:
        decision, batch_name = batch.plan_batch(
            context, month, user_ids, config.force_regenerate, config.user_ids is not None,
            app_db, image_model, image_store, cover_keys, pending_covers,
        )  # fmt: skip
        if decision is batch.Decision.WAIT:
            return
    context.log.info(f"{month}: {len(user_ids)} users to cover")
    # The app backend reads the run's total over the webserver's GraphQL API (backend_api.py).
    # A tag is an indexed row: it holds a bounded sample, the count, never the whole list (a
    # 100,000-id list once broke PostgreSQL's index); the full list is in the month's events.
    context.instance.add_run_tags(
        context.run_id,
        {
            TOTAL_TAG: str(len(user_ids)),
            UNKNOWN_USERS_TAG: json.dumps(unknown[:TAGGED_IDS]),
            UNKNOWN_COUNT_TAG: str(len(unknown)),
        },
    )
    # A batch's results run lists the batch's users: it records the month as the run that
    # submitted the batch would have (a batch for listed users never marks the month done).
    if config.batch_name is None:
        listed_only = config.user_ids is not None
    else:
        listed_only = batch.batch_listed_only(context.instance, month, config.batch_name)
    context.log_event(events.planned(month.key, len(user_ids), unknown, listed_only))
    plan = MonthPlan(month.key, user_ids, unknown, partial=listed_only)
    yield Output(plan, output_name="plan")
    if batch_name is not None:
        tasks = batch.results_tasks(
            context, month, user_ids, batch_name, config.force_regenerate, image_model
        )
    else:
        tasks = (UserTask(user_id, month.key, config.force_regenerate) for user_id in user_ids)
    for task in tasks:
        yield DynamicOutput(task, mapping_key=task.mapping_key, output_name=USERS_OUTPUT)
