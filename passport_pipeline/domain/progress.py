"""A month's progress, computed from the step events of its runs (pure: no Dagster I/O)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from enum import StrEnum


class StepEventKind(StrEnum):
    START = "start"
    OUTPUT = "output"
    SUCCESS = "success"
    RETRY = "retry"
    FAILURE = "failure"
    # A failure that is a stop: the user's step never started, or was canceled by Ctrl-C or
    # Terminate. Nothing was decided for the user: they are remaining, not done.
    STOPPED = "stopped"


@dataclass(frozen=True)
class StepEvent:
    """One event of one user's cover step (the reader keeps only those: see covers/names.py)."""

    user: str  # the step's mapping key, e.g. "user_7"
    kind: StepEventKind
    timestamp: float
    status: str | None = None  # a cover record's status, on OUTPUT events
    cost_usd: float = 0.0  # the estimated cost of the model calls, on OUTPUT and FAILURE events


@dataclass(frozen=True)
class Progress:
    total: int | None
    completed: int
    failed: int
    skipped: int
    in_flight: int
    remaining: int | None
    percent: float | None
    elapsed_s: float
    estimated_cost_usd: float = 0.0
    # Of the remaining: users whose step was stopped (never started, or canceled mid-way).
    stopped: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


# Marks a user's failed step carries when nothing was decided for the user (cover_step.py).
STOP_MARKERS = frozenset({"canceled", "halted"})


def failure_kind(
    *, started: bool = True, interrupted: bool = False, markers: Iterable[str] = ()
) -> StepEventKind:
    """How progress counts a user's failed step, whoever reads it (the event log, GraphQL): a
    stop (the user is remaining) when the step never started, was interrupted (Ctrl-C,
    Terminate), or was canceled or not tried after a halt; else a failure (the user is done)."""
    if not started or interrupted or STOP_MARKERS & set(markers):
        return StepEventKind.STOPPED
    return StepEventKind.FAILURE


# A user's output status → how progress counts the user; any other status is a cover.
# A refusal (the model declined the prompt) is a named failure, though its step succeeded.
_OUTCOMES = {"skipped": "skipped", "refused": "failed"}


def compute_progress(
    total: int | None, events: Iterable[StepEvent], started_at: float, ended_at: float
) -> Progress:
    """Fold the events (in time order, over a run and its re-executions) into counts.

    A user's latest event decides: a failed step that a re-execution then ran successfully
    counts as completed, not failed; a user whose step was stopped (never started, canceled)
    counts as remaining until a later run decides them.
    """
    state: dict[str, str] = {}
    for event in sorted(events, key=lambda e: e.timestamp):
        user = event.user
        if event.kind is StepEventKind.OUTPUT:
            state[user] = _OUTCOMES.get(event.status or "", "output")
        elif event.kind is StepEventKind.SUCCESS:
            if state.get(user) not in ("skipped", "failed"):
                state[user] = "completed"
        elif event.kind is StepEventKind.FAILURE:
            state[user] = "failed"
        elif event.kind is StepEventKind.STOPPED:
            state[user] = "stopped"
        elif event.kind in (StepEventKind.START, StepEventKind.RETRY):
            state[user] = "in_flight"
    cost = sum(e.cost_usd for e in events)
    names = ("completed", "failed", "skipped", "in_flight", "output", "stopped")
    counts = {name: 0 for name in names}
    for value in state.values():
        counts[value] += 1
    done = counts["completed"] + counts["failed"] + counts["skipped"]
    remaining = None if total is None else max(total - done, 0)
    percent = None if not total else round(100.0 * done / total, 1)
    if total == 0:
        percent = 100.0
    return Progress(
        total=total,
        completed=counts["completed"],
        failed=counts["failed"],
        skipped=counts["skipped"],
        in_flight=counts["in_flight"] + counts["output"],
        remaining=remaining,
        percent=percent,
        elapsed_s=round(max(ended_at - started_at, 0.0), 1),
        estimated_cost_usd=round(cost, 4),
        stopped=counts["stopped"],
    )


def progress_line(progress: Progress, pacing: str | None = None) -> str:
    """One line for people, as the run's tag shows it while the month runs (``pacing``: the
    model's pace and the run's width, when it is paced)."""
    total = "?" if progress.total is None else progress.total
    done = progress.completed + progress.failed + progress.skipped
    percent = "" if progress.percent is None else f" ({progress.percent:g}%)"
    stopped = f" ({progress.stopped} stopped)" if progress.stopped else ""
    remaining = "?" if progress.remaining is None else progress.remaining  # before the plan
    return (
        f"{done} of {total} users done{percent}: {progress.completed} covered, "
        f"{progress.failed} failed, {progress.skipped} skipped; {remaining} remaining"
        f"{stopped}, "
        f"{progress.in_flight} in flight; ${progress.estimated_cost_usd:.2f} so far"
        + (f"; {pacing}" if pacing else "")
    )


@dataclass(frozen=True)
class InFlight:
    max: int
    mean: float  # time-weighted over a window: by default from the first start to the last end


def cover_step_intervals(events: Iterable[StepEvent]) -> list[tuple[float, float]]:
    """(start, end) of every attempt of every user's step that has ended."""
    open_since: dict[str, float] = {}
    intervals = []
    for event in sorted(events, key=lambda e: e.timestamp):
        if event.kind is StepEventKind.START:
            open_since[event.user] = event.timestamp
        elif event.kind in (
            StepEventKind.SUCCESS,
            StepEventKind.FAILURE,
            StepEventKind.STOPPED,
            StepEventKind.RETRY,
        ):
            started = open_since.pop(event.user, None)
            if started is not None:
                intervals.append((started, event.timestamp))
    return intervals


def in_flight(
    intervals: list[tuple[float, float]], window: tuple[float, float] | None = None
) -> InFlight:
    """How many intervals overlapped: at most, and on average over ``window`` (by default
    their whole span), each instant of the window weighted alike."""
    if not intervals:
        return InFlight(0, 0.0)
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    current = peak = 0
    for _, change in edges:  # at a tie an end comes first: back-to-back is not overlap
        current += change
        peak = max(peak, current)
    low, high = window or (edges[0][0], edges[-1][0])
    if high <= low:
        return InFlight(peak, float(peak))
    busy = sum(max(0.0, min(end, high) - max(start, low)) for start, end in intervals)
    return InFlight(peak, round(busy / (high - low), 2))


def steady_window(intervals: list[tuple[float, float]], width: int) -> tuple[float, float] | None:
    """From the ``width``-th start to the ``width``-th-from-last end: the stretch in which a
    pool of that width can be full, without the ramp-up and the tail. None if there is none."""
    if len(intervals) < width:
        return None
    low = sorted(start for start, _ in intervals)[width - 1]
    high = sorted(end for _, end in intervals)[len(intervals) - width]
    return (low, high) if high > low else None
