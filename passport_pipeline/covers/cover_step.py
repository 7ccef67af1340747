"""One user's step: draw (or reuse), check and store the cover, then link it to the passport."""

from collections.abc import Iterator
from contextlib import contextmanager

from dagster import DagsterExecutionInterruptedError, Failure, OpExecutionContext, Output, op

from passport_pipeline.covers.batch import batch_image
from passport_pipeline.covers.breaker import record_unusable_and_check
from passport_pipeline.covers.cover_need import Need, cover_need
from passport_pipeline.covers.names import GEMINI_POOL, HALT_TAG
from passport_pipeline.covers.quota_resume import record_quota_halt
from passport_pipeline.domain.breaker import HALT_AFTER_UNUSABLE, halt_reason
from passport_pipeline.domain.gemini_responses import tally_metadata
from passport_pipeline.domain.images import inspect_image
from passport_pipeline.domain.keys import cover_key
from passport_pipeline.domain.months import Month
from passport_pipeline.domain.prompt import build_prompt
from passport_pipeline.domain.records import (
    CoverRecord,
    CoverRequest,
    CoverStatus,
    GeneratedImage,
    UserTask,
)
from passport_pipeline.domain.run_state import own_state, own_state_tag
from passport_pipeline.resources.app_db import AppDatabase
from passport_pipeline.resources.cover_keys import CoverKeys
from passport_pipeline.resources.image_model import ImageModel, PermanentImageModelError
from passport_pipeline.resources.image_store import ImageStore
from passport_pipeline.resources.pending_covers import PendingCovers


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
    upload, and only forward: never from a later month's cover back to this month's. A user
    whose prompt the model declines (a safety filter) ends as ``refused``, with the reason in
    the step's metadata and a warning in its log: asking again would get the same answer."""
    with _ends_as_canceled(task):
        month = Month.parse(task.month)
        _stop_if_halted(context)
        need = cover_need(
            task.user_id, month, task.force, app_db, image_store, cover_keys, pending_covers
        )
        if need.need is Need.SKIP:
            return _skipped(task, need.reason)
        passport, visits, stem = need.passport, list(need.visits), need.stem
        if need.need is Need.REUSE:
            existing = need.stored
            linked = app_db.link_cover(passport.id, existing.url, month)
            record = CoverRecord(
                task.user_id, month.key, CoverStatus.REUSED, passport.id, existing.key, existing.url
            )
            metadata = {"key": existing.key, "linked": linked, "model_calls": 0}
            metadata.update(image_store.cover_metadata(existing.url))
            return Output(record, metadata={"status": record.status.value, **metadata})
        image = need.kept
        kept = image is not None
        if image is None:
            request = CoverRequest(
                prompt=build_prompt(passport, month, visits),
                month=month,
                nickname=passport.nickname,
                title=passport.title,
                visits=tuple(visits),
            )
            try:
                if task.batch is not None:  # the answer of the month's Gemini batch, already paid
                    image = batch_image(task, image_model)
                else:
                    # The halt is asked again right before each paid call: a step that
                    # waited for the pace while the run halted calls nothing. Unusable answers
                    # count toward the halt before the next user is let in.
                    image = image_model.generate(
                        request,
                        go_ahead=lambda: _stop_if_halted(context),
                        on_unusable=lambda error: _count_unusable(context, task, error),
                    )
            except PermanentImageModelError as error:
                if error.refused:
                    return _refused(context, task, error)
                if error.unusable_answer and task.batch is not None:
                    # A batch answer holds no place in flight: counted here (generate's are
                    # counted through on_unusable, before its user's place is given back).
                    _count_unusable(context, task, error)
                raise _failure(context, task, error, image_model) from None
            pending_covers.keep(stem, image)
        return _store_and_link(
            task, passport.id, stem, image, kept, app_db, image_store, pending_covers
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


def _store_and_link(
    task: UserTask,
    passport_id: int,
    stem: str,
    image: GeneratedImage,
    kept: bool,
    app_db: AppDatabase,
    image_store: ImageStore,
    pending_covers: PendingCovers,
) -> Output[CoverRecord]:
    month = Month.parse(task.month)
    info = image.info or inspect_image(image.data)
    stored = image_store.put(cover_key(stem, info.extension), image.data, info.mime_type)
    pending_covers.discard(stem)
    linked = app_db.link_cover(passport_id, stored.url, month)
    record = CoverRecord(
        task.user_id,
        month.key,
        CoverStatus.GENERATED,
        passport_id,
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


def _refused(
    context: OpExecutionContext, task: UserTask, error: PermanentImageModelError
) -> Output[CoverRecord]:
    # Expected and final for this month: asking again gets the same answer. The user's outcome
    # is "refused" with the model's reason (counted as failed in progress and the summary), not
    # a failed step with a stack trace; a later launch of the month asks again.
    said = f"user {task.user_id}: refused by the image model: {error} ({error.reason})"
    context.log.warning(said)
    record = CoverRecord(task.user_id, task.month, CoverStatus.REFUSED, reason=error.reason)
    metadata = {"status": record.status.value, "reason": error.reason, "said": said}
    return Output(record, metadata={**metadata, **tally_metadata(error.responses)})


def _failure(
    context: OpExecutionContext,
    task: UserTask,
    error: PermanentImageModelError,
    image_model: ImageModel,
) -> Failure:
    if error.halts_run:
        if error.daily_quota:  # recorded before the halt: its alert says when the month resumes
            record_quota_halt(context, task.month, error.retry_delay_s)
        _halt_run(context, str(error))
    metadata = {"user_id": task.user_id, "reason": error.reason, **tally_metadata(error.responses)}
    if error.paid_calls:
        # Unusable answers are still answers: the month's cost counts them (covers/progress.py).
        price = float(getattr(image_model, "price_per_image_usd", 0.0))
        metadata |= {"paid_calls": error.paid_calls, "estimated_cost_usd": error.paid_calls * price}
    return Failure(f"user {task.user_id}: {error}", metadata=metadata, allow_retries=False)


def _count_unusable(
    context: OpExecutionContext, task: UserTask, error: PermanentImageModelError
) -> None:
    # Recorded first, then the run's streak read: of two users ending at once, the later reader
    # sees both (covers/breaker.py).
    reason = record_unusable_and_check(context, task.month, task.user_id, error.reason)
    if reason is not None:
        said = f"user {task.user_id}: {error}"
        _halt_run(context, halt_reason(reason, HALT_AFTER_UNUSABLE, said))


def _skipped(task: UserTask, reason: str) -> Output[CoverRecord]:
    record = CoverRecord(task.user_id, task.month, CoverStatus.SKIPPED, reason=reason)
    return Output(record, metadata={"status": record.status.value, "reason": reason})


def _halt_run(context: OpExecutionContext, reason: str) -> None:
    # Run tags are shared by every step of the run; a re-execution does not inherit the halt.
    tag = own_state_tag(HALT_TAG, context.run_id, {"reason": reason})
    context.instance.add_run_tags(context.run_id, tag)


def _stop_if_halted(context: OpExecutionContext) -> None:
    run = context.instance.get_run_by_id(context.run_id)
    halted = own_state(run.tags, HALT_TAG, context.run_id) if run else None
    if halted:
        # Nothing was tried for this user: progress counts them as remaining (a stop).
        raise Failure(
            f"not calling the image model: this run was halted: {halted['reason']}",
            metadata={"halted": True},
            allow_retries=False,
        )
