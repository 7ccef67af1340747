"""The sensors of batch mode: poll the months' Gemini batches, launch each finished batch's
results run, and cancel a month's batch when a run of the month is terminated.

The poller's cursor holds the last ledger entry it has read (a storage id of the event log) and
the open batches it knows; new batches come from the ledger (``batch_ledger.py``), so a daemon
restarted while a batch is pending picks up where its last tick ended, and a batch recorded
while the daemon was down is found on the first tick. A finished batch's results run is
requested with the batch's name as ``run_key``: Dagster launches one run per key, however often
a tick is retried.
"""

from __future__ import annotations

import json
from dataclasses import asdict

from dagster import (
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunStatusSensorContext,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from passport_pipeline.covers.batch import cancel_open_batches, results_run_config
from passport_pipeline.covers.batch_ledger import (
    BATCH_TAG,
    BatchRecord,
    fold_batches,
    ledger_entries,
    record_batch,
)
from passport_pipeline.covers.names import PARTITION_TAG, covers_run_status_sensor, is_covers_run
from passport_pipeline.resources.gemini_batch import GeminiBatchImageModel
from passport_pipeline.resources.image_model import ImageModelError

REQUESTED_KEPT = 500


def batch_sensors(job, poll_interval_s: float) -> list[SensorDefinition]:
    """The poller of open batches, and the cancel of a terminated month's batches."""
    return [_poll_sensor(job, poll_interval_s), _cancel_sensor(job.name)]


def _poll_sensor(job, poll_interval_s: float) -> SensorDefinition:
    @sensor(
        name=f"{job.name}_batches",
        job=job,
        minimum_interval_seconds=max(1, int(poll_interval_s)),
        default_status=DefaultSensorStatus.RUNNING,
        description=(
            "Polls the months' Gemini batches; records their state and counts on the month, and "
            "launches the month's results run when a batch is done (or failed, cancelled, "
            "expired: that run fails the month, naming the state and what to do)."
        ),
    )
    def poll_month_batches(context: SensorEvaluationContext, image_model: GeminiBatchImageModel):
        """Find new batches in the ledger, record each open one's state and counts when they
        change, and request the results run of each batch that has ended."""
        cursor = json.loads(context.cursor) if context.cursor else {}
        after = cursor.get("after")
        known = {name: BatchRecord(**fields) for name, fields in cursor.get("open", {}).items()}
        entries = list(ledger_entries(context.instance, after=after))
        known = fold_batches(entries, known)
        # Batches whose results run is requested: the ledger's later entries about them (this
        # sensor's own, written after ``after``) must not open them again.
        requested = cursor.get("requested", [])
        for name in requested:
            known.pop(name, None)
        after = entries[-1].storage_id if entries else after
        requests, lines = [], []
        for name, record in list(known.items()):
            if record.closed:
                del known[name]
                continue
            try:
                job = image_model.get(name)
            except ImageModelError as error:  # Gemini down: ask again next tick
                lines.append(f"{name}: {error}")
                continue
            if job.progress() != record.progress:
                record_batch(context.instance, record, job)
                record.state, record.progress = job.state, job.progress()
                if record.submit_run_id:
                    tag = {BATCH_TAG: f"{name} {job.progress()}"}
                    context.instance.add_run_tags(record.submit_run_id, tag)
            lines.append(f"{name} ({record.month}): {job.progress()}")
            if not job.is_open:
                requests.append(
                    RunRequest(
                        run_key=f"batch-results:{name}",
                        partition_key=record.month,
                        run_config=results_run_config(record),
                        tags={BATCH_TAG: name},
                    )
                )
                del known[name]  # its results run closes it in the ledger
                requested = [*requested, name][-REQUESTED_KEPT:]
        context.update_cursor(
            json.dumps(
                {
                    "after": after,
                    "open": {n: asdict(r) for n, r in known.items()},
                    "requested": requested,
                }
            )
        )
        return requests or SkipReason("; ".join(lines) or "no open batch")

    return poll_month_batches


def _cancel_sensor(job_name: str) -> SensorDefinition:
    @covers_run_status_sensor(
        DagsterRunStatus.CANCELED,
        f"{job_name}_batch_cancel",
        "Cancels the open Gemini batches of a month whose run was terminated.",
    )
    def cancel_month_batches(context: RunStatusSensorContext, image_model: GeminiBatchImageModel):
        """Cancel the open batches of the terminated run's month."""
        run = context.dagster_run
        month = run.tags.get(PARTITION_TAG)
        if not is_covers_run(run) or not month:
            return SkipReason("not a run of a month")
        cancelled = cancel_open_batches(context.instance, month, image_model)
        return SkipReason(f"cancelled {cancelled}" if cancelled else "no open batch")

    return cancel_month_batches
