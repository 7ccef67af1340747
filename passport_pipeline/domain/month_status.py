"""A month's progress for the app backend, folded from what the webserver's GraphQL API returns
about the month's runs (pure: no I/O). ``backend_api.py`` fetches; this decides."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from passport_pipeline.domain.month_runs import FINISHED, is_refused, runs_the_covers
from passport_pipeline.domain.progress import (
    StepEvent,
    StepEventKind,
    compute_progress,
    failure_kind,
)

TOTAL_TAG = "passport/total"
UNKNOWN_USERS_TAG = "passport/unknown_user_ids"  # the first TAGGED_IDS of them, as JSON
UNKNOWN_COUNT_TAG = "passport/unknown_user_count"
TAGGED_IDS = 20
STARTING = frozenset({"NOT_STARTED", "STARTING"})


@dataclass(frozen=True)
class StepStat:
    """One user's cover step in one run, as the webserver's step stats report it."""

    user: str  # the step's mapping key, e.g. "user_7"
    status: str  # Dagster's StepEventStatus: IN_PROGRESS, SUCCESS, FAILURE, SKIPPED
    start_time: float | None
    end_time: float | None


@dataclass(frozen=True)
class RunView:
    run_id: str
    root_run_id: str  # the first run of the run group: itself unless a re-execution
    status: str  # Dagster's RunStatus
    creation_time: float
    start_time: float | None
    end_time: float | None
    tags: dict[str, str]
    step_stats: list[StepStat] = field(default_factory=list)
    job_name: str | None = None
    asset_selection: list[str] | None = None  # asset keys, "/"-joined

    @property
    def runs_the_covers(self) -> bool:
        """A run of the covers, from any entry point (``month_runs.runs_the_covers``)."""
        return runs_the_covers(self.job_name, self.asset_selection)


@dataclass(frozen=True)
class MonthProgress:
    month: str
    run_id: str  # the run group's first run: name a launch by it
    run_ids: list[str]  # the run and its re-executions, oldest first
    status: str  # the latest run's status
    total: int | None  # None until the first step has found the users
    completed: int
    failed: int
    skipped: int
    in_flight: int
    remaining: int | None
    percent: float | None
    elapsed_s: float
    message: str
    unknown_user_ids: list[int]
    summary: dict | None  # the month's summary (asset passport_covers), once recorded

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    def as_dict(self) -> dict:
        return asdict(self)


def run_group(runs: list[RunView], run_id: str | None = None) -> list[RunView]:
    """The group of ``run_id`` (default: of the month's latest run), oldest first."""
    runs = [run for run in runs if run.run_id == run_id or not is_refused(run.run_id, run.tags)]
    if not runs:
        return []
    by_id = {run.run_id: run for run in runs}
    if run_id is not None and run_id not in by_id:
        return []
    anchor = by_id[run_id] if run_id else max(runs, key=lambda run: run.creation_time)
    group = [run for run in runs if run.root_run_id == anchor.root_run_id]
    return sorted(group, key=lambda run: run.creation_time)


def _events(group: list[RunView]) -> list[StepEvent]:
    events = []
    for run in group:
        for stat in run.step_stats:
            start = stat.start_time or run.start_time or run.creation_time
            end = stat.end_time or start
            if stat.status in ("IN_PROGRESS", "SUCCESS"):
                events.append(StepEvent(stat.user, StepEventKind.START, start))
            if stat.status == "SUCCESS":
                events.append(StepEvent(stat.user, StepEventKind.SUCCESS, end))
            elif stat.status == "FAILURE":
                # Step stats carry no error: a step that never started is the stop they show.
                kind = failure_kind(started=stat.start_time is not None)
                events.append(StepEvent(stat.user, kind, end))
    return events


def fold_month(month: str, group: list[RunView], summary: dict | None, now: float) -> MonthProgress:
    """Counts over a run group: a user's latest step decides (a failure that a re-execution
    then covered counts as completed). While the runs go on, ``completed`` also holds users
    skipped (no passport, no visit): the step events cannot tell them apart; the month's
    summary, recorded at the end, splits them out."""
    latest = group[-1]
    tagged = next((run.tags for run in group if TOTAL_TAG in run.tags), {})
    total = int(tagged[TOTAL_TAG]) if TOTAL_TAG in tagged else None
    starts = [run.start_time for run in group if run.start_time]
    started_at = min(starts) if starts else now
    all_done = all(run.status in FINISHED for run in group)
    ended_at = max((run.end_time or now) for run in group) if all_done and starts else now
    progress = compute_progress(total, _events(group), started_at, ended_at)
    completed, failed, skipped = progress.completed, progress.failed, progress.skipped
    if summary is not None:
        completed = int(summary["generated"]) + int(summary["reused"])
        # A month recorded before refusals were counted apart has no "refused".
        failed = int(summary["failed"]) + int(summary.get("refused", 0))
        skipped = int(summary["skipped"])
    counts = {"completed": completed, "failed": failed, "skipped": skipped}
    return MonthProgress(
        month=month,
        run_id=latest.root_run_id,
        run_ids=[run.run_id for run in group],
        status=latest.status,
        total=total,
        completed=completed,
        failed=failed,
        skipped=skipped,
        in_flight=0 if latest.status in FINISHED else progress.in_flight,
        remaining=progress.remaining,
        percent=progress.percent,
        elapsed_s=progress.elapsed_s,
        message=_message(latest.status, total, progress.in_flight, counts),
        unknown_user_ids=json.loads(tagged.get(UNKNOWN_USERS_TAG, "[]")),
        summary=summary,
    )


def _message(status: str, total: int | None, in_flight: int, counts: dict[str, int]) -> str:
    done = sum(counts.values())
    failed = counts["failed"]
    if status == "QUEUED":
        return "queued: waits for the cover run before it to end (one at a time)"
    if status in STARTING:
        return "starting: the run is being launched"
    if total is None:
        if status == "FAILURE":
            return "failed before any cover: the run could not start its users (see its logs)"
        if status in FINISHED or status == "CANCELING":
            return f"{status.lower()} before any cover"
        return "starting: finding the month's users"
    if status == "SUCCESS":
        return (
            f"done: {counts['completed']} covered, {counts['skipped']} skipped, "
            f"{failed} failed of {total}"
        )
    if status == "FAILURE":
        if failed:
            return (
                f"failed: {failed} of {total} users failed; re-execute from failure "
                "to retry only them"
            )
        return f"failed after {done} of {total} users: see the run's logs"
    if status in ("CANCELED", "CANCELING"):
        return f"canceled after {done} of {total} users: launch the month again to finish it"
    return f"running: {done} of {total} users done ({failed} failed), {in_flight} in progress"
