"""The month's covers: a graph-backed asset (the month's users → one cover step per user →
record the month), partitioned by month, and the job that materializes it."""

import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from dagster import (
    AssetKey,
    AssetObservation,
    AssetsDefinition,
    Config,
    ConfigMapping,
    DagsterExecutionInterruptedError,
    DagsterRun,
    DynamicOut,
    DynamicOutput,
    Failure,
    MetadataValue,
    OpExecutionContext,
    Out,
    Output,
    RetryPolicy,
    define_asset_job,
    graph_asset,
    op,
)
from pydantic import Field

from passport_pipeline import batch_month
from passport_pipeline.breaker import record_unusable_and_check
from passport_pipeline.domain.breaker import HALT_AFTER_UNUSABLE, halt_reason
from passport_pipeline.domain.images import inspect_image
from passport_pipeline.domain.keys import WeakSecretError, cover_key
from passport_pipeline.domain.month_status import TOTAL_TAG, UNKNOWN_USERS_TAG
from passport_pipeline.domain.months import InvalidMonthError, Month
from passport_pipeline.domain.prompt import build_prompt
from passport_pipeline.domain.records import (
    CoverRecord,
    CoverRequest,
    CoverStatus,
    GeneratedImage,
    UserTask,
)
from passport_pipeline.domain.summary import missing_users, preview_markdown, summarize_month
from passport_pipeline.partitions import monthly_partitions
from passport_pipeline.resources.app_db import AppDatabase
from passport_pipeline.resources.cover_keys import CoverKeys
from passport_pipeline.resources.image_model import ImageModel, PermanentImageModelError
from passport_pipeline.resources.image_store import ImageStore, ImageStoreUnusableError
from passport_pipeline.resources.pending_covers import PendingCovers

COVERS_ASSET = "passport_covers"
GEMINI_POOL = "gemini"
HALT_TAG = "passport/halted"
# Step keys, inside the asset's graph: the first step, its fan-out output, and the mapped step
# (``passport_covers.generate_cover[user_7]``).
USERS_STEP = f"{COVERS_ASSET}.month_users"
USERS_OUTPUT = "users"
COVER_STEP = f"{COVERS_ASSET}.generate_cover"


class MonthUsersConfig(Config):
    user_ids: list[int] | None = Field(
        default=None,
        description="Only these users (default: everyone with a visit in the month).",
    )
    force_regenerate: bool = Field(
        default=False,
        description="Call the image model even for users whose cover for the month is stored.",
    )
    # -- batch mode (PASSPORT_IMAGE_MODEL=gemini-batch; see batch_month.py) --
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


def run_month(context: OpExecutionContext) -> Month:
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
    if not monthly_partitions.has_partition_key(month.key):
        keys = monthly_partitions.get_partition_keys()
        raise Failure(
            f"partition key: {month} is not a month this job covers: months run from "
            f"{keys[0]} to the last finished month, {keys[-1]}",
            allow_retries=False,
        )
    return month


# No plan when the month's users were submitted as a Gemini batch: the run ends there and
# record_month is skipped; the batch's results run records the month.
@op(out={"plan": Out(MonthPlan, is_required=False), "users": DynamicOut(UserTask)})
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
    month = run_month(context)
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
            context.log.warning(f"skipping user ids that do not exist: {unknown}")
    batch_name = config.batch_name
    if batch_name is None and batch_month.uses_batch(image_model) and not config.direct:
        decision, batch_name = batch_month.plan_batch(
            context, month, user_ids, config.force_regenerate, app_db, image_model,
            image_store, cover_keys, pending_covers,
        )  # fmt: skip
        if decision is batch_month.Decision.WAIT:
            return
    context.log.info(f"{month}: {len(user_ids)} users to cover")
    # The app backend reads the run's total over the webserver's GraphQL API (backend_api.py).
    context.instance.add_run_tags(
        context.run_id, {TOTAL_TAG: str(len(user_ids)), UNKNOWN_USERS_TAG: json.dumps(unknown)}
    )
    context.log_event(
        AssetObservation(
            asset_key=COVERS_ASSET,
            partition=month.key,
            metadata={"total": len(user_ids), "unknown_user_ids": MetadataValue.json(unknown)},
        )
    )
    yield Output(MonthPlan(month.key, user_ids, unknown), output_name="plan")
    if batch_name is not None:
        tasks = batch_month.results_tasks(
            context, month, user_ids, batch_name, config.force_regenerate, image_model
        )
    else:
        tasks = (UserTask(user_id, month.key, config.force_regenerate) for user_id in user_ids)
    for task in tasks:
        yield DynamicOutput(task, mapping_key=task.mapping_key, output_name="users")


@op(pool=GEMINI_POOL)
def generate_cover(
    context: OpExecutionContext,
    task: UserTask,
    app_db: AppDatabase,
    image_model: ImageModel,
    image_store: ImageStore,
    cover_keys: CoverKeys,
    pending_covers: PendingCovers,
) -> Output[CoverRecord]:
    """Draw, check and store one user's cover, then point the user's passport at it.

    Reuses a cover already stored for this user and month unless the run forces regeneration,
    so re-running a month never pays twice; a cover paid for whose upload failed is kept on
    this machine and uploaded by the next attempt. The passport is updated only after the
    upload, and only forward: never from a later month's cover back to this month's."""
    with _ends_as_canceled(task):
        return _cover_user(
            context, task, app_db, image_model, image_store, cover_keys, pending_covers
        )


@contextmanager
def _ends_as_canceled(task: UserTask) -> Iterator[None]:
    # Dagster turns an interrupt inside a step with a retry policy into "up for retry": a
    # terminated run would show its steps waiting to retry forever. The run was stopped on
    # purpose, so the step ends, named as canceled; re-execution from failure runs it again.
    try:
        yield
    except (DagsterExecutionInterruptedError, KeyboardInterrupt):
        raise Failure(
            f"user {task.user_id}: canceled: the run was stopped while this user's cover was "
            "being made; nothing was linked (an image already paid for is kept for the next "
            "attempt). Re-execute the run from failure to finish the user.",
            metadata={"user_id": task.user_id, "canceled": True},
            allow_retries=False,
        ) from None


def _cover_user(
    context: OpExecutionContext,
    task: UserTask,
    app_db: AppDatabase,
    image_model: ImageModel,
    image_store: ImageStore,
    cover_keys: CoverKeys,
    pending_covers: PendingCovers,
) -> Output[CoverRecord]:
    month = Month.parse(task.month)
    _stop_if_halted(context)
    passport = app_db.latest_passport(task.user_id)
    if passport is None:
        return _skipped(task, "user has no passport")
    visits = app_db.month_visits(task.user_id, month)
    if not visits:
        return _skipped(task, f"no visits in {month}")
    stem = cover_keys.stem(task.user_id, month)
    if not task.force and (existing := image_store.find(stem)) is not None:
        linked = app_db.link_cover(passport.id, existing.url, month)
        record = CoverRecord(
            task.user_id, month.key, CoverStatus.REUSED, passport.id, existing.key, existing.url
        )
        metadata = {"key": existing.key, "linked": linked, "model_calls": 0}
        metadata.update(image_store.cover_metadata(existing.url))
        return Output(record, metadata={"status": record.status.value, **metadata})
    image = pending_covers.find(stem)
    kept = image is not None
    if image is None:
        request = CoverRequest(
            prompt=build_prompt(passport, month, visits),
            month=month,
            nickname=passport.nickname,
            title=passport.title,
            visits=tuple(visits),
        )
        if task.batch is not None:  # the answer of the month's Gemini batch, already paid
            image = batch_month.batch_image(task, image_model)
        else:
            image = _generate(context, image_model, task, request)
        pending_covers.keep(stem, image)
    info = image.info or inspect_image(image.data)
    stored = image_store.put(cover_key(stem, info.extension), image.data, info.mime_type)
    pending_covers.discard(stem)
    linked = app_db.link_cover(passport.id, stored.url, month)
    record = CoverRecord(
        task.user_id,
        month.key,
        CoverStatus.GENERATED,
        passport.id,
        stored.key,
        stored.url,
        estimated_cost_usd=float(image.metadata.get("estimated_cost_usd", 0.0)),
        path=str(image.metadata.get("path", "direct")),
    )
    metadata = {
        "key": stored.key,
        "linked": linked,
        "model": image.model,
        "mime_type": info.mime_type,
        "size": f"{info.width}x{info.height}",
        "bytes": len(image.data),
        # An earlier attempt paid for this image and could not store it; this one stored it.
        "uploaded_kept_image": kept,
        **image.metadata,
        **image_store.cover_metadata(stored.url),
    }
    return Output(record, metadata={"status": record.status.value, **metadata})


def _generate(
    context: OpExecutionContext, image_model: ImageModel, task: UserTask, request: CoverRequest
) -> GeneratedImage:
    try:
        return image_model.generate(request)
    except PermanentImageModelError as error:
        if error.halts_run:
            _halt_run(context, str(error))
        elif error.unusable_answer:
            said = f"user {task.user_id}: {error}"
            reason = record_unusable_and_check(
                context, COVERS_ASSET, request.month.key, task.user_id, error.reason
            )
            if reason is not None:
                _halt_run(context, halt_reason(reason, HALT_AFTER_UNUSABLE, said))
        raise Failure(
            f"user {task.user_id}: {error}",
            metadata={"user_id": task.user_id, "reason": error.reason},
            allow_retries=False,
        ) from None


@op
def record_month(
    context: OpExecutionContext,
    plan: MonthPlan,
    records: list[CoverRecord],
    app_db: AppDatabase,
    image_store: ImageStore,
):
    """Check the month's books: every planned user has a record, every stored cover exists
    and is linked to its passport (unless a later month's cover is already there); then record
    the month's summary on the `passport_covers` asset."""
    missing = missing_users(plan.user_ids, records)
    if missing:
        # Never report a month done with users neither covered nor failed.
        raise Failure(
            f"{len(missing)} of {len(plan.user_ids)} planned users of {plan.month} have neither "
            f"a cover nor a failure in this run: users {_listed(missing)}. Launch the month "
            f"{plan.month} again (Launchpad, or dagster job execute with the partition "
            f"{plan.month}): it covers them, and reuses every stored cover without paying twice.",
            metadata={"missing_user_ids": MetadataValue.json(missing)},
            allow_retries=False,
        )
    relinked = 0
    for record in records:
        if record.url and record.passport_id is not None:
            if not image_store.exists_at(record.url):
                raise Failure(
                    f"user {record.user_id}: cover {record.key} is missing from the store"
                )
            relinked += app_db.link_cover(record.passport_id, record.url, Month.parse(record.month))
    summary = summarize_month(plan.month, plan.user_ids, records)
    metadata = {
        **summary.as_metadata(),
        "relinked": relinked,
        "unknown_user_ids": MetadataValue.json(plan.unknown_user_ids),
        "skip_reasons": MetadataValue.json(summary.skip_reasons),
        # Which path made the month's new covers (direct calls, or a Gemini batch at half price).
        "cover_paths": MetadataValue.json(
            dict(Counter(r.path for r in records if r.status is CoverStatus.GENERATED))
        ),
        "preview": MetadataValue.md(preview_markdown(summary, image_store.preview_src)),
    }
    # The asset's materialization for the month: the catalog shows this summary.
    return Output(summary.as_metadata(), metadata=metadata)


def _listed(user_ids: list[int], limit: int = 20) -> str:
    shown = ", ".join(str(user_id) for user_id in user_ids[:limit])
    return shown + (f" and {len(user_ids) - limit} more" if len(user_ids) > limit else "")


def _skipped(task: UserTask, reason: str) -> Output[CoverRecord]:
    record = CoverRecord(task.user_id, task.month, CoverStatus.SKIPPED, reason=reason)
    return Output(record, metadata={"status": record.status.value, "reason": reason})


def _halt_run(context: OpExecutionContext, reason: str) -> None:
    # Run tags are shared by every step process of the run; re-executions copy tags, so the
    # value names the run that halted.
    value = json.dumps({"run_id": context.run_id, "reason": reason})
    context.instance.add_run_tags(context.run_id, {HALT_TAG: value})


def _stop_if_halted(context: OpExecutionContext) -> None:
    run = context.instance.get_run_by_id(context.run_id)
    raw = run.tags.get(HALT_TAG) if run else None
    if raw:
        halted = json.loads(raw)
        if halted.get("run_id") == context.run_id:
            raise Failure(
                f"not calling the image model: this run was halted: {halted['reason']}",
                allow_retries=False,
            )


JOB_NAME = "monthly_passport_covers"


def build_covers_asset(retry_policy: RetryPolicy) -> AssetsDefinition:
    """The month's covers as one partitioned asset, with the retry policy of the definitions.

    The policy covers the steps that talk to outside systems: a database blip or a model that is
    briefly down is retried; permanent failures raise ``Failure(allow_retries=False)``."""
    cover_step = generate_cover.with_retry_policy(retry_policy)
    users_step = month_users.with_retry_policy(retry_policy)

    @graph_asset(
        name=COVERS_ASSET,
        partitions_def=monthly_partitions,
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


def is_covers_run(run: DagsterRun) -> bool:
    """A run of the job, or any other run that materializes the covers: from the asset's page
    (Dagster's implicit asset job, ``__ASSET_JOB``) or ``materialize`` (an ephemeral job)."""
    if run.job_name == JOB_NAME or AssetKey(COVERS_ASSET) in (run.asset_selection or ()):
        return True
    # Implicit asset jobs are named "__…"; in this code location they can only hold the covers.
    return run.job_name.startswith("__") and not run.asset_selection
