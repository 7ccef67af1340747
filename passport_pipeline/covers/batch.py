"""A month through Gemini's Batch API: submit the month's requests, and hand each user their
answer when the batch is done.

The month's run (``PASSPORT_IMAGE_MODEL=gemini-batch``) builds one request per user that needs
a paid image (a passport, visits in the month, no stored or kept cover), writes its intent to
the month's ledger (``batch_ledger.py``), creates one batch named after the month and the run,
records it at once, and ends: no step, slot or process waits for Gemini. A run killed between
the create and the record is found out by the next launch, which adopts the batch it left
(looked up by display name) instead of paying for the month twice. The sensor
in ``batch_sensor.py`` polls the batch and, when it is finished, launches the month's results
run (run config ``batch_name``), whose first step closes the batch in the ledger and fans out
one step per user carrying the user's answer (``UserTask.batch``).

A launch of the month while a batch is open submits nothing for the users in it; a launch
after a finished batch whose results were never stored becomes that batch's results run.
"""

from __future__ import annotations

from collections.abc import Iterator
from enum import StrEnum

from dagster import Failure, OpExecutionContext

from passport_pipeline.covers.batch_ledger import (
    BATCH_TAG,
    BatchIntent,
    BatchRecord,
    display_name,
    ledger_entries,
    month_batches,
    open_intents,
    record_batch,
    record_intent,
    settle_intent,
)
from passport_pipeline.covers.cover_need import Need, cover_need
from passport_pipeline.covers.names import COVERS_ASSET
from passport_pipeline.domain import batch_protocol as protocol
from passport_pipeline.domain.batch_protocol import BatchJob, BatchSlot
from passport_pipeline.domain.gemini_protocol import build_generate_body
from passport_pipeline.domain.months import Month
from passport_pipeline.domain.prompt import build_prompt
from passport_pipeline.domain.records import GeneratedImage, UserTask
from passport_pipeline.resources.app_db import AppDatabase
from passport_pipeline.resources.cover_keys import CoverKeys
from passport_pipeline.resources.gemini_batch import GeminiBatchImageModel
from passport_pipeline.resources.image_model import ImageModel, PermanentImageModelError
from passport_pipeline.resources.image_store import ImageStore
from passport_pipeline.resources.pending_covers import PendingCovers


class Decision(StrEnum):
    WAIT = "wait"  # the month's users are in an open batch: the run ends
    RESULTS = "results"  # a finished batch's results were never stored: store them now
    DIRECT = "direct"  # nothing to pay for: the normal path (reuse, skip)


def uses_batch(image_model: ImageModel) -> bool:
    return isinstance(image_model, GeminiBatchImageModel)


def cancel_open_batches(instance, month: str, image_model: GeminiBatchImageModel) -> list[str]:
    """Ask Gemini to cancel every open batch of the month (``batches/{name}:cancel``); the
    poller then sees them CANCELLED and the results run fails the month, saying so."""
    cancelled = []
    for record in month_batches(instance, month).values():
        if record.closed or not image_model.get(record.name).is_open:
            continue
        image_model.cancel(record.name)
        record_batch(instance, record, image_model.get(record.name))
        cancelled.append(record.name)
    return cancelled


def plan_batch(
    context: OpExecutionContext,
    month: Month,
    user_ids: list[int],
    force: bool,
    listed_only: bool,
    app_db: AppDatabase,
    model: GeminiBatchImageModel,
    image_store: ImageStore,
    cover_keys: CoverKeys,
    pending_covers: PendingCovers,
) -> tuple[Decision, str | None]:
    """Submit the month's users that need a paid image, unless they already wait in a batch
    (one recorded, or one an interrupted launch created without recording it)."""
    _adopt_unrecorded_batches(context, month, model)
    waiting: set[int] = set()
    for record in month_batches(context.instance, month.key).values():
        if record.closed:
            continue
        job = model.get(record.name)
        if not job.is_open:
            context.log.info(f"{record.name} ended {job.state}: this run stores its results")
            return Decision.RESULTS, record.name
        waiting |= set(record.user_ids)
        context.log.info(f"{len(record.user_ids)} users wait in {record.name}: {job.progress()}")
    requests = []
    for user_id in user_ids:
        if user_id in waiting:
            continue
        # The same decision as the user's step: only users who need a paid image go in.
        need = cover_need(user_id, month, force, app_db, image_store, cover_keys, pending_covers)
        if need.need is not Need.PAY:
            continue
        prompt = build_prompt(need.passport, month, list(need.visits))
        body = build_generate_body(prompt, model.aspect_ratio)
        requests.append((protocol.user_key(user_id), body))
    if not requests:
        return (Decision.WAIT if waiting else Decision.DIRECT), None
    planned = [user_id for user_id in user_ids if user_id not in waiting]
    intent = BatchIntent(
        display_name(month.key, context.run_id),
        month.key,
        planned,
        [key for key, _ in requests],
        context.run_id,
        force,
        listed_only,
    )
    record_intent(context, intent)  # before the create: a crash after it leaves a trace
    job = model.submit(intent.display_name, requests)
    _record_new_batch(context, intent, job)
    context.log.info(
        f"{month}: {len(requests)} of {len(planned)} users submitted as {job.name} "
        f"({job.state}); the sensor stores their covers when Gemini has answered"
    )
    return Decision.WAIT, None


def _adopt_unrecorded_batches(
    context: OpExecutionContext, month: Month, model: GeminiBatchImageModel
) -> None:
    """Record each batch an earlier launch created but never recorded (found by its display
    name); settle the intents whose create never reached Gemini."""
    for intent in open_intents(list(ledger_entries(context.instance, month.key))):
        found = model.find(intent.display_name)
        if not found:
            context.log.info(f"{intent.display_name}: never created; nothing to adopt")
            settle_intent(context, intent)
            continue
        for job in found:
            context.log.warning(
                f"{job.name} ({intent.display_name}) was created by run {intent.submit_run_id} "
                f"but never recorded (the run stopped in between): adopting it, not paying for "
                f"its {len(intent.keys)} users again"
            )
            _record_new_batch(context, intent, job)


def _record_new_batch(context: OpExecutionContext, intent: BatchIntent, job: BatchJob) -> None:
    record = BatchRecord(
        job.name,
        intent.month,
        job.state,
        intent.user_ids,
        intent.keys,
        intent.submit_run_id,
        intent.force,
        display_name=intent.display_name,
        listed_only=intent.listed_only,
    )
    record_batch(context, record, job, first=True)
    context.instance.add_run_tags(context.run_id, {BATCH_TAG: f"{job.name} {job.progress()}"})


def batch_listed_only(instance, month: Month, batch_name: str) -> bool:
    """Whether ``batch_name`` was submitted for listed users only (not the whole month)."""
    record = month_batches(instance, month.key).get(batch_name)
    return record is not None and record.listed_only


def results_tasks(
    context: OpExecutionContext,
    month: Month,
    user_ids: list[int],
    batch_name: str,
    force: bool,
    model: ImageModel,
) -> Iterator[UserTask]:
    """The users' tasks of a finished batch, each with its answer; fails the month (naming the
    state and what to do) when the batch gave none."""
    record = month_batches(context.instance, month.key).get(batch_name)
    if record is None:
        raise Failure(f"{month}: no batch {batch_name} in the month's ledger", allow_retries=False)
    if not isinstance(model, GeminiBatchImageModel):
        raise Failure(
            f"{batch_name}: its results need PASSPORT_IMAGE_MODEL=gemini-batch",
            allow_retries=False,
        )
    job = model.get(batch_name)
    if job.is_open:
        raise Failure(
            f"{batch_name} is still {job.progress()}; the sensor launches its results run when "
            "it is done",
            allow_retries=False,
        )
    if job.state != protocol.SUCCEEDED:
        record_batch(context, record, job, closed=True, results_run_id=context.run_id)
        raise Failure(
            protocol.stopped_message(job, month.key),
            metadata={"batch_name": batch_name, "batch_state": job.state},
            allow_retries=False,
        )
    context.log.info(f"{batch_name}: {job.progress()}")
    seen: set[int] = set()
    for answer in model.answers(job, record.keys):
        user_id = protocol.key_user(answer.key)
        if user_id in user_ids and user_id not in seen:
            seen.add(user_id)
            yield UserTask(user_id, month.key, force, BatchSlot(batch_name, answer))
    submitted = set(record.keys)
    for user_id in user_ids:
        if user_id not in seen:
            in_batch = protocol.user_key(user_id) in submitted
            slot = BatchSlot(batch_name, None) if in_batch else None
            yield UserTask(user_id, month.key, force, slot)
    record_batch(context, record, job, closed=True, results_run_id=context.run_id)


def batch_image(task: UserTask, model: ImageModel) -> GeneratedImage:
    """The user's image from the batch's answer (decoded and checked like a direct answer)."""
    slot = task.batch
    assert slot is not None
    direct = "ops: {passport_covers: {config: {user_ids: [ID], direct: true}}}"
    direct = direct.replace("ID", str(task.user_id))
    if slot.answer is None:
        raise Failure(
            f"user {task.user_id}: {slot.batch_name} has no answer for this user; run the user "
            f"through the normal path (full price) with run config {direct}",
            metadata={"user_id": task.user_id, "batch_name": slot.batch_name},
            allow_retries=False,
        )
    if not isinstance(model, GeminiBatchImageModel):
        raise Failure(f"user {task.user_id}: batch answers need PASSPORT_IMAGE_MODEL=gemini-batch")
    try:
        return model.image_from(slot.answer)
    except PermanentImageModelError as error:
        if error.refused:
            raise  # the user's outcome, as on the direct path (cover_step.py)
        # The step fails as a direct answer would (cover_step.py): an unusable answer counts
        # toward the run's breaker, so a batch of garbage halts the results run.
        raise PermanentImageModelError(
            f"{error} ({error.reason}; in {slot.batch_name}). To try again: launch the month "
            f"(a new batch), or at full price with run config {direct}",
            reason=error.reason,
            unusable_answer=error.unusable_answer,
        ) from None


def results_run_config(record: BatchRecord) -> dict:
    config = {"user_ids": record.user_ids, "batch_name": record.name}
    if record.force:
        config["force_regenerate"] = True
    return {"ops": {COVERS_ASSET: {"config": config}}}
