"""A month through Gemini's Batch API: submit the month's requests, and hand each user their
answer when the batch is done.

The month's run (``PASSPORT_IMAGE_MODEL=gemini-batch``) builds one request per user that needs
a paid image (a passport, visits in the month, no stored or kept cover), creates one batch,
records it on the ``passport_covers`` partition at once (an AssetObservation: the event log is
the durable ledger of batches), and ends: no step, slot or process waits for Gemini. The sensor
in ``batch_sensor.py`` polls the batch and, when it is finished, launches the month's results
run (run config ``batch_name``), whose first step closes the batch in the ledger and fans out
one step per user carrying the user's answer (``UserTask.batch``).

A launch of the month while a batch is open submits nothing for the users in it; a launch
after a finished batch whose results were never stored becomes that batch's results run.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum

from dagster import (
    AssetKey,
    AssetRecordsFilter,
    DagsterInstance,
    Failure,
    MetadataValue,
    OpExecutionContext,
)

from passport_pipeline.covers import events
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

BATCH_TAG = "passport/batch"  # on the submit run: the batch's name, state and counts


@dataclass
class BatchRecord:
    """A batch as the ledger knows it: its last recorded state, and whether its results run
    has taken it (closed)."""

    name: str
    month: str
    state: str
    user_ids: list[int] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    submit_run_id: str = ""
    force: bool = False
    progress: str = ""
    closed: bool = False


class Decision(StrEnum):
    WAIT = "wait"  # the month's users are in an open batch: the run ends
    RESULTS = "results"  # a finished batch's results were never stored: store them now
    DIRECT = "direct"  # nothing to pay for: the normal path (reuse, skip)


def uses_batch(image_model: ImageModel) -> bool:
    return isinstance(image_model, GeminiBatchImageModel)


def record_batch(
    instance_or_context: DagsterInstance | OpExecutionContext,
    record: BatchRecord,
    job: BatchJob | None = None,
    *,
    first: bool = False,
    closed: bool = False,
    results_run_id: str | None = None,
) -> None:
    """Write a batch's state to the ledger (and, first, who is in it)."""
    metadata: dict = {
        "batch_name": record.name,
        "batch_state": job.state if job else record.state,
        "batch_progress": job.progress() if job else record.progress,
        "batch_closed": closed,
    }
    if first:
        metadata |= {
            "batch_user_ids": MetadataValue.json(record.user_ids),
            "batch_request_keys": MetadataValue.json(record.keys),
            "batch_submit_run_id": record.submit_run_id,
            "batch_force": record.force,
        }
    if results_run_id:
        metadata["batch_results_run_id"] = results_run_id
    event = events.batch_ledger(record.month, metadata)
    if isinstance(instance_or_context, DagsterInstance):
        instance_or_context.report_runless_asset_event(event)
    else:
        instance_or_context.log_event(event)


def fold_batches(records: list, known: dict[str, BatchRecord] | None = None) -> dict:
    """Apply ledger entries (oldest first) to what is known of each batch."""
    known = {} if known is None else known
    for entry in records:
        observation = entry.asset_observation
        values = {k: v.value for k, v in (observation.metadata if observation else {}).items()}
        name = values.get("batch_name")
        if not name:
            continue
        record = known.get(name) or BatchRecord(name, entry.partition_key or "", "")
        record.state = str(values.get("batch_state") or record.state)
        record.progress = str(values.get("batch_progress") or record.progress)
        record.closed = record.closed or bool(values.get("batch_closed"))
        if "batch_user_ids" in values:
            record.user_ids = [int(u) for u in values["batch_user_ids"]]
            record.keys = [str(k) for k in values.get("batch_request_keys") or []]
            record.submit_run_id = str(values.get("batch_submit_run_id") or "")
            record.force = bool(values.get("batch_force"))
        known[name] = record
    return known


def ledger_entries(instance: DagsterInstance, month: str | None = None, after: int | None = None):
    """The ledger's entries (every observation of the asset, filtered by month), oldest first."""
    records_filter = AssetRecordsFilter(
        asset_key=AssetKey(COVERS_ASSET),
        asset_partitions=[month] if month else None,
        after_storage_id=after,
    )
    cursor = None
    while True:
        result = instance.fetch_observations(records_filter, 500, cursor, ascending=True)
        yield from result.records
        if not result.has_more:
            return
        cursor = result.cursor


def month_batches(instance: DagsterInstance, month: str) -> dict[str, BatchRecord]:
    return fold_batches(list(ledger_entries(instance, month)))


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
    app_db: AppDatabase,
    model: GeminiBatchImageModel,
    image_store: ImageStore,
    cover_keys: CoverKeys,
    pending_covers: PendingCovers,
) -> tuple[Decision, str | None]:
    """Submit the month's users that need a paid image, unless they already wait in a batch."""
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
        passport = app_db.latest_passport(user_id)
        visits = app_db.month_visits(user_id, month) if passport else []
        stem = cover_keys.stem(user_id, month)
        if not visits or (not force and image_store.find(stem) is not None):
            continue
        if pending_covers.find(stem) is not None:  # paid for already, kept on this machine
            continue
        body = build_generate_body(build_prompt(passport, month, visits), model.aspect_ratio)
        requests.append((protocol.user_key(user_id), body))
    if not requests:
        return (Decision.WAIT if waiting else Decision.DIRECT), None
    planned = [user_id for user_id in user_ids if user_id not in waiting]
    job = model.submit(f"passport-covers-{month.key}-{context.run_id[:8]}", requests)
    record = BatchRecord(
        job.name,
        month.key,
        job.state,
        planned,
        [key for key, _ in requests],
        context.run_id,
        force,
    )
    # At once: a restart from here on finds the batch in the event log.
    record_batch(context, record, job, first=True)
    context.instance.add_run_tags(context.run_id, {BATCH_TAG: f"{job.name} {job.progress()}"})
    context.log.info(
        f"{month}: {len(requests)} of {len(planned)} users submitted as {job.name} "
        f"({job.state}); the sensor stores their covers when Gemini has answered"
    )
    return Decision.WAIT, None


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
        raise Failure(
            f"user {task.user_id}: {error} ({error.reason}; in {slot.batch_name}). To try again: "
            f"launch the month (a new batch), or at full price with run config {direct}",
            metadata={"user_id": task.user_id, "reason": error.reason, "batch": slot.batch_name},
            allow_retries=False,
        ) from None


def results_run_config(record: BatchRecord) -> dict:
    config = {"user_ids": record.user_ids, "batch_name": record.name}
    if record.force:
        config["force_regenerate"] = True
    return {"ops": {COVERS_ASSET: {"config": config}}}
