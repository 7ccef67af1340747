"""The exporter's incremental reading of the Dagster instance: each refresh reads only what is
new since the last one.

- runs: the run records updated since the last refresh (a new run, a status, a tag);
- each covers run's step events and plans, from its own event-log cursor, until the run has
  ended and its last events were read (an ended run is never read again);
- the covers asset's materializations (a month done) and observations (the batch ledger),
  from their storage-id cursors.

A new reader (an exporter restarted) reads everything once and so rebuilds every count from
the durable records: counters start from what the records hold, never from zero.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta

from dagster import (
    AssetKey,
    AssetRecordsFilter,
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    RunsFilter,
)

from passport_pipeline.covers.alerts import pending_channels
from passport_pipeline.covers.batch_ledger import BatchRecord, fold_batches, ledger_entries
from passport_pipeline.covers.names import COVERS_ASSET, PARTITION_TAG, is_covers_run, user_of_step
from passport_pipeline.covers.progress import PROGRESS_EVENT_TYPES, planned_total_of, step_event_of
from passport_pipeline.domain.gemini_responses import tally_from_metadata
from passport_pipeline.metrics.facts import (
    Histogram,
    MonthFacts,
    failure_responses,
    generation_latency,
    paid_path,
)

ENDED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}
PAGE = 1000
# Run records are read again from a little before the last one seen: two updates in one
# instant, or clocks of two machines, are not missed (re-reading a run is harmless).
RUNS_OVERLAP = timedelta(seconds=5)


@dataclass
class RunState:
    month: str
    cursor: str | None = None
    ended: bool = False
    drained: bool = False  # ended, and every event read after it ended
    pending_alerts: int = 0


@dataclass
class Snapshot:
    """What one scrape serves (copies: the next refresh may change the reader's own)."""

    months: dict[str, dict[str, int]]
    paid: dict[str, Counter]
    cost: dict[str, float]
    in_flight: int
    responses: Counter
    latency: Histogram
    last_success: dict[str, float]
    batches: list[BatchRecord]
    alerts_pending: int
    pool: dict[str, tuple[int, int]] = field(default_factory=dict)


class InstanceReader:
    def __init__(self, instance: DagsterInstance, pools: tuple[str, ...] = ()):
        self.instance = instance
        self.pools = pools
        self.months: dict[str, MonthFacts] = {}
        self.runs: dict[str, RunState] = {}
        self.ignored: set[str] = set()
        self.responses: Counter = Counter()
        self.latency = Histogram()
        self.last_success: dict[str, float] = {}
        self.batches: dict[str, BatchRecord] = {}
        self._runs_after = None
        self._materializations_after: int | None = None
        self._observations_after: int | None = None
        self._lock = threading.Lock()  # two scrapes at once read in turn

    def snapshot(self) -> Snapshot:
        """Read what is new, then the counts as they are now."""
        with self._lock:
            self._read_runs()
            for run_id, state in self.runs.items():
                if not state.drained:
                    self._read_run_events(run_id, state)
            self._read_materializations()
            self._read_batch_ledger()
            active = {state.month for state in self.runs.values() if not state.ended}
            return Snapshot(
                months={month: dict(facts.users()) for month, facts in self.months.items()},
                paid={month: Counter(facts.paid) for month, facts in self.months.items()},
                cost={m: facts.progress().estimated_cost_usd for m, facts in self.months.items()},
                # A month's users in flight while one of its runs is under way (a crashed
                # run's last steps are not in flight once run monitoring ended the run).
                in_flight=sum(self.months[m].progress().in_flight for m in active),
                responses=Counter(self.responses),
                latency=Histogram(
                    self.latency.bounds,
                    list(self.latency.counts),
                    self.latency.total,
                    self.latency.count,
                ),
                last_success=dict(self.last_success),
                batches=[b for b in self.batches.values() if not b.closed],
                alerts_pending=sum(state.pending_alerts for state in self.runs.values()),
                pool=self._pools(),
            )

    def _read_runs(self) -> None:
        filters = RunsFilter(updated_after=self._runs_after) if self._runs_after else None
        for record in self.instance.get_run_records(filters, ascending=True):
            run = record.dagster_run
            stamp = record.update_timestamp - RUNS_OVERLAP
            self._runs_after = max(self._runs_after or stamp, stamp)
            if run.run_id in self.ignored:
                continue
            month = run.tags.get(PARTITION_TAG)
            if not month or not is_covers_run(run):
                # Not the covers, or a run refused for an older run of its month (it did
                # nothing; it may have been seen before the refusal was tagged).
                self.ignored.add(run.run_id)
                if run.run_id in self.runs:
                    self.months[self.runs.pop(run.run_id).month].drop_run(run.run_id)
                continue
            state = self.runs.setdefault(run.run_id, RunState(month))
            self.months.setdefault(month, MonthFacts())
            state.ended = run.status in ENDED
            state.pending_alerts = len(pending_channels(run))

    def _read_run_events(self, run_id: str, state: RunState) -> None:
        ended_before_reading = state.ended
        facts = self.months[state.month]
        while True:
            page = self.instance.event_log_storage.get_records_for_run(
                run_id, cursor=state.cursor, of_type=set(PROGRESS_EVENT_TYPES), limit=PAGE
            )
            for record in page.records:
                self._fold(run_id, facts, record.event_log_entry)
            state.cursor = page.cursor
            if not page.has_more:
                break
        # Events are written before the run's status ends it: once read after that, none is left.
        state.drained = ended_before_reading

    def _fold(self, run_id: str, facts: MonthFacts, entry) -> None:
        planned = planned_total_of(entry, whole_month_total=True)
        if planned is not None:
            facts.add_plan(run_id, entry.timestamp, planned)
            return
        event = step_event_of(entry)
        if event is None:
            return
        facts.add_event(run_id, event)
        dagster_event = entry.dagster_event
        if dagster_event.event_type is DagsterEventType.STEP_OUTPUT:
            metadata = {k: v.value for k, v in dagster_event.step_output_data.metadata.items()}
            if (path := paid_path(metadata)) is not None:
                facts.paid[path] += 1
            if (latency := generation_latency(metadata)) is not None:
                self.latency.observe(latency)
            self.responses.update(tally_from_metadata(metadata))
        elif dagster_event.event_type in (
            DagsterEventType.STEP_FAILURE,
            DagsterEventType.STEP_UP_FOR_RETRY,
        ):
            self.responses.update(_failure_responses(dagster_event))

    def _read_materializations(self) -> None:
        key = AssetKey(COVERS_ASSET)
        cursor = None
        while True:
            result = self.instance.fetch_materializations(
                AssetRecordsFilter(asset_key=key, after_storage_id=self._materializations_after),
                PAGE,
                cursor,
                ascending=True,
            )
            for record in result.records:
                month = record.partition_key
                if month:
                    self.last_success[month] = max(
                        self.last_success.get(month, 0.0), record.timestamp
                    )
                self._materializations_after = record.storage_id
            if not result.has_more:
                return
            cursor = result.cursor

    def _read_batch_ledger(self) -> None:
        entries = list(ledger_entries(self.instance, None, after=self._observations_after))
        if entries:
            self._observations_after = entries[-1].storage_id
            fold_batches(entries, self.batches)

    def _pools(self) -> dict[str, tuple[int, int]]:
        storage = self.instance.event_log_storage
        infos = storage.get_concurrency_infos(list(self.pools)) if self.pools else {}
        # The limit as configured (the instance's default until set), and the slots held.
        limits = {
            pool: info.slot_count if info.limit is None else info.limit
            for pool, info in infos.items()
        }
        return {pool: (limits[pool], info.active_slot_count) for pool, info in infos.items()}


def _failure_responses(dagster_event) -> Counter:
    if user_of_step(dagster_event.step_key) is None:
        return Counter()
    data = (
        dagster_event.step_failure_data
        if dagster_event.event_type is DagsterEventType.STEP_FAILURE
        else dagster_event.step_retry_data
    )
    user_failure = getattr(data, "user_failure_data", None)
    metadata = {k: v.value for k, v in (user_failure.metadata if user_failure else {}).items()}
    error = getattr(data, "error", None)
    message = ""
    while error is not None:  # the model's error may be the cause of Dagster's wrapper
        message += f" {error.message}"
        error = error.cause
    return failure_responses(metadata, message)
