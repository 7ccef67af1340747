"""The ledger of a month's Gemini batches, kept in the event log as observations of the month.

Every entry is an AssetObservation of the ``passport_covers`` partition (``events.batch_ledger``):
the event log is durable, shared by every process of the deployment, and read back by the
submitting run, the poller (``batch_sensor.py``), the results run and the shell. Entries:

- an *intent*, written before a batch is created: its display name and the users it will hold.
  A run killed after Gemini created the batch but before the batch was recorded leaves an
  intent without a batch; the month's next launch looks the display name up
  (``batches.list``) and adopts the batch instead of paying for a second one;
- a batch's first record (its name, users, request keys), then its states as polled, and its
  closing by its results run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dagster import AssetKey, AssetRecordsFilter, DagsterInstance, MetadataValue, OpExecutionContext

from passport_pipeline.covers import events
from passport_pipeline.covers.names import COVERS_ASSET
from passport_pipeline.domain.batch_protocol import BatchJob

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
    display_name: str = ""
    # Submitted for a run of listed users: its results run records an observation, never the
    # month's materialization (the month's other users are not in it).
    listed_only: bool = False


@dataclass
class BatchIntent:
    """A batch about to be created: whom it holds, under which display name."""

    display_name: str
    month: str
    user_ids: list[int]
    keys: list[str]
    submit_run_id: str
    force: bool = False
    listed_only: bool = False


def display_name(month: str, run_id: str) -> str:
    """A batch's display name: the month and the run that submits it (unique per run)."""
    return f"passport-covers-{month}-{run_id}"


def record_intent(context: OpExecutionContext, intent: BatchIntent) -> None:
    """Write the intent before the create call: a crash after it leaves a trace to follow."""
    metadata = {
        "batch_intent": intent.display_name,
        "batch_user_ids": MetadataValue.json(intent.user_ids),
        "batch_request_keys": MetadataValue.json(intent.keys),
        "batch_submit_run_id": intent.submit_run_id,
        "batch_force": intent.force,
        "batch_listed_only": intent.listed_only,
    }
    context.log_event(events.batch_ledger(intent.month, metadata))


def settle_intent(context: OpExecutionContext, intent: BatchIntent) -> None:
    """The intent's create never arrived (no batch of that name): nothing to adopt."""
    metadata = {"batch_intent": intent.display_name, "batch_intent_void": True}
    context.log_event(events.batch_ledger(intent.month, metadata))


def open_intents(records: list) -> list[BatchIntent]:
    """Intents (oldest first) that have neither a recorded batch nor were settled."""
    intents: dict[str, BatchIntent] = {}
    for entry in records:
        values = _values(entry)
        if (name := values.get("batch_intent")) and values.get("batch_intent_void"):
            intents.pop(str(name), None)
        elif name:
            intents[str(name)] = BatchIntent(
                str(name),
                entry.partition_key or "",
                [int(u) for u in values.get("batch_user_ids") or []],
                [str(k) for k in values.get("batch_request_keys") or []],
                str(values.get("batch_submit_run_id") or ""),
                bool(values.get("batch_force")),
                bool(values.get("batch_listed_only")),
            )
        elif values.get("batch_name") and values.get("batch_display_name"):
            intents.pop(str(values["batch_display_name"]), None)
    return list(intents.values())


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
            "batch_display_name": record.display_name,
            "batch_user_ids": MetadataValue.json(record.user_ids),
            "batch_request_keys": MetadataValue.json(record.keys),
            "batch_submit_run_id": record.submit_run_id,
            "batch_force": record.force,
            "batch_listed_only": record.listed_only,
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
        values = _values(entry)
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
            record.display_name = str(values.get("batch_display_name") or "")
            record.listed_only = bool(values.get("batch_listed_only"))
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


def _values(entry) -> dict:
    observation = entry.asset_observation
    return {k: v.value for k, v in (observation.metadata if observation else {}).items()}
