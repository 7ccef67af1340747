"""Progress of a month's covers, read from Dagster's durable event log (the command-line view is
``passport_pipeline.cli.progress``; the run page's view is the ``passport/progress`` tag).

Counts cover the run and all of its re-executions (its run group): total, completed, failed,
skipped, in flight, remaining, percent and elapsed — the facts the old progress endpoint gave,
but surviving restarts — and how many cover steps ran at once (max and time-weighted mean,
from the steps' start and end events).
"""

from __future__ import annotations

import os
import threading
import time

from dagster import AssetKey, AssetRecordsFilter, DagsterEventType, DagsterInstance, RunsFilter
from sqlalchemy.exc import SQLAlchemyError

from passport_pipeline.covers.batch_ledger import month_batches
from passport_pipeline.covers.names import (
    COVERS_ASSET,
    PARTITION_TAG,
    is_covers_run,
    is_refused,
    user_of_step,
)
from passport_pipeline.dagster_internals import ErrorSource
from passport_pipeline.domain.months import Month
from passport_pipeline.domain.pacing import pace_line
from passport_pipeline.domain.progress import (
    InFlight,
    Progress,
    StepEvent,
    StepEventKind,
    compute_progress,
    cover_step_intervals,
    failure_kind,
    in_flight,
    progress_line,
)
from passport_pipeline.resources.pacing import PacingStore, instance_database_url

PROGRESS_TAG = "passport/progress"
_STORES: dict[str, PacingStore] = {}  # one engine per instance database, for every publish
_STORES_LOCK = threading.Lock()

_KINDS = {
    DagsterEventType.STEP_START: StepEventKind.START,
    DagsterEventType.STEP_OUTPUT: StepEventKind.OUTPUT,
    DagsterEventType.STEP_SUCCESS: StepEventKind.SUCCESS,
    DagsterEventType.STEP_UP_FOR_RETRY: StepEventKind.RETRY,
    DagsterEventType.STEP_FAILURE: StepEventKind.FAILURE,
}
# What progress reads from a run's event log: its users' step events and the planned total.
PROGRESS_EVENT_TYPES = frozenset({*_KINDS, DagsterEventType.ASSET_OBSERVATION})


def latest_run_id(instance: DagsterInstance, month: Month) -> str | None:
    """The month's newest run of the covers, from the job, the asset's page or the CLI."""
    runs = instance.get_runs(RunsFilter(tags={PARTITION_TAG: month.key}), limit=50)
    return next((run.run_id for run in runs if is_covers_run(run)), None)


def group_run_ids(instance: DagsterInstance, run_id: str) -> list[str]:
    """The run and its re-executions, without those refused for an older run of the month (they
    did nothing); the run itself always."""
    group = instance.get_run_group(run_id)
    if group is None:
        raise LookupError(f"no run {run_id} in this Dagster instance")
    return [run.run_id for run in group[1] if run.run_id == run_id or not is_refused(run)]


def run_status(instance: DagsterInstance, run_id: str) -> str:
    """The status of the newest run of the run's group: queued, started, success, failure,
    canceled, … (lower case)."""
    records = instance.get_run_records(RunsFilter(run_ids=group_run_ids(instance, run_id)))
    newest = max(records, key=lambda record: record.create_timestamp)
    return newest.dagster_run.status.value.lower()


def publish_progress(instance: DagsterInstance, run_id: str) -> str:
    """Put the month's progress on the run (tag ``passport/progress``, which the runs list and
    the backend read); the line, which the run's executor also logs when it changed."""
    progress, _ = run_progress(instance, run_id)
    line = progress_line(progress, run_pacing(instance, [run_id]))
    instance.add_run_tags(run_id, {PROGRESS_TAG: line})
    return line


def run_pacing(instance: DagsterInstance, run_ids: list[str]) -> str | None:
    """The deployment's pace with the image model and the width of the newest of ``run_ids``
    that has one (``pace 42/min, width 12``), from the pacing store; None when nothing was
    ever paced (the local model, batch mode) or the store cannot be read."""
    url = instance_database_url(instance)
    if url.startswith("sqlite:///") and not os.path.exists(url.removeprefix("sqlite:///")):
        return None  # no paced call ever ran on this embedded instance: create nothing
    with _STORES_LOCK:
        store = _STORES.setdefault(url, PacingStore(url))
    try:
        pace, width = None, None
        for run_id in reversed(run_ids):
            pace, width = store.snapshot(run_id)
            if width is not None:
                break
    except SQLAlchemyError:  # progress is read without it rather than not at all
        return None
    return pace_line(pace, width)


def run_progress(instance: DagsterInstance, run_id: str) -> tuple[Progress, InFlight]:
    """The month's counts over the run and its re-executions, and the cover steps in flight."""
    return _progress_of(instance, group_run_ids(instance, run_id), whole_month_total=False)


def month_progress(instance: DagsterInstance, month: str) -> Progress:
    """The month's counts over every run of it (the job, the asset page, the CLI, their
    re-executions, runs of listed users): each user's latest outcome, the spend of them all, and
    the total of the latest plan of the whole month."""
    runs = instance.get_runs(RunsFilter(tags={PARTITION_TAG: month}))
    run_ids = [run.run_id for run in reversed(runs) if is_covers_run(run)]
    return _progress_of(instance, run_ids, whole_month_total=True)[0]


def _progress_of(
    instance: DagsterInstance, run_ids: list[str], whole_month_total: bool
) -> tuple[Progress, InFlight]:
    events: list[StepEvent] = []
    total: int | None = None
    for one_run_id in run_ids:
        for entry in instance.all_logs(one_run_id, of_type=set(PROGRESS_EVENT_TYPES)):
            planned = planned_total_of(entry, whole_month_total)
            if planned is not None:
                total = planned
            elif (event := step_event_of(entry)) is not None:
                events.append(event)
    records = instance.get_run_records(RunsFilter(run_ids=run_ids)) if run_ids else []
    starts = [r.start_time for r in records if r.start_time]
    finished = all(r.end_time for r in records)
    started_at = min(starts) if starts else time.time()
    ended_at = max(r.end_time for r in records) if finished and records else time.time()
    progress = compute_progress(total, events, started_at, ended_at)
    return progress, in_flight(cover_step_intervals(events))


def planned_total_of(entry, whole_month_total: bool) -> int | None:
    """The planned total an event log entry records (``month_users``'s observation), if any; a
    run of listed users plans no month's total (``whole_month_total``)."""
    event = entry.dagster_event
    if event is None or event.event_type is not DagsterEventType.ASSET_OBSERVATION:
        return None
    metadata = event.asset_observation_data.asset_observation.metadata
    listed_only = "listed_only" in metadata and metadata["listed_only"].value
    if "total" in metadata and not (whole_month_total and listed_only):
        return int(metadata["total"].value)
    return None


def step_event_of(entry) -> StepEvent | None:
    """A user's cover step event as progress counts it; None for any other entry."""
    event = entry.dagster_event
    if event is None or event.event_type not in _KINDS:
        return None
    user = user_of_step(event.step_key)
    if user is None:
        return None
    kind, status, cost = _KINDS[event.event_type], None, 0.0
    if event.event_type is DagsterEventType.STEP_OUTPUT:
        metadata = event.step_output_data.metadata
        status = metadata["status"].value if "status" in metadata else None
        if "estimated_cost_usd" in metadata:
            cost = float(metadata["estimated_cost_usd"].value)
    elif event.event_type is DagsterEventType.STEP_FAILURE:
        kind, cost = _failure_kind(event.step_failure_data)
    return StepEvent(user, kind, entry.timestamp, status, cost)


def _failure_kind(failure) -> tuple[StepEventKind, float]:
    """A stop (never started, canceled, interrupted, not tried after a halt) or a failure, and
    what its calls cost."""
    metadata = failure.user_failure_data.metadata if failure.user_failure_data else {}
    cost = float(metadata["estimated_cost_usd"].value) if "estimated_cost_usd" in metadata else 0.0
    # Never-started steps are recorded as interrupts (dagster_internals.report_step_never_started).
    interrupted = failure.error_source == ErrorSource.INTERRUPT
    return failure_kind(interrupted=interrupted, markers=metadata), cost


def month_summary(instance: DagsterInstance, month: Month) -> dict | None:
    result = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey(COVERS_ASSET), asset_partitions=[month.key]), limit=1
    )
    if not result.records:
        return None
    metadata = result.records[0].asset_materialization.metadata
    return {key: value.value for key, value in metadata.items()}


def report_for(instance: DagsterInstance, run_id: str, month: Month | None, covers: bool) -> dict:
    progress, steps_in_flight = run_progress(instance, run_id)
    report = {
        "run_id": run_id,
        "status": run_status(instance, run_id),
        **progress.as_dict(),
        "max_in_flight": steps_in_flight.max,
        "mean_in_flight": steps_in_flight.mean,
    }
    if (pacing := run_pacing(instance, group_run_ids(instance, run_id))) is not None:
        report["pacing"] = pacing
    if month is not None:
        # Batch mode: the run that submitted the month's batch has ended; the batch has not.
        pending = {
            name: record.progress or record.state
            for name, record in month_batches(instance, month.key).items()
            if not record.closed
        }
        if pending:
            report["batches"] = pending
    if covers and month is not None:
        report["summary"] = month_summary(instance, month)
    return report
