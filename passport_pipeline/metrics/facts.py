"""What the exporter counts, folded from the instance's records (pure: no Dagster I/O).

A month's user counts are the progress module's (``domain/progress.compute_progress``) over
every covers run of the month; the paid images, the Gemini answers and the generation
latencies are read from the users' step outputs and failures. Every counter here only grows as
events are added, so an exporter that rebuilds them from the event log after a restart serves
the same or larger values: Prometheus never sees a counter go back.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from passport_pipeline.domain.gemini_responses import tally_from_metadata, tally_from_text
from passport_pipeline.domain.progress import Progress, StepEvent, StepEventKind, compute_progress

# A generation takes up to about two minutes; the buckets split that range.
LATENCY_BUCKETS_S = (1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0)
MONTH_STATES = ("planned", "covered", "failed", "refused", "skipped", "remaining", "stopped")
PAID_PATHS = ("direct", "batch", "fallback")


def paid_path(metadata: Mapping[str, object]) -> str | None:
    """How a user's step output got a new (paid) cover: direct, batch or fallback (Gemini gave
    no image and the local renderer drew it); None for a reused, skipped or refused user."""
    if metadata.get("status") != "generated":
        return None
    if metadata.get("fallback"):
        return "fallback"
    return "batch" if metadata.get("path") == "batch" else "direct"


def generation_latency(metadata: Mapping[str, object]) -> float | None:
    """One generation's latency (seconds) from a direct call's output; a batch has none."""
    latency = metadata.get("latency_s")
    if paid_path(metadata) != "direct" or isinstance(latency, bool):
        return None
    return float(latency) if isinstance(latency, int | float) else None


def failure_responses(metadata: Mapping[str, object], message: str) -> Counter:
    """The Gemini answers of a failed (or retried) step: its metadata's tally, else its error's."""
    return tally_from_metadata(metadata) or tally_from_text(message)


def refused_users(events: list[StepEvent]) -> int:
    """Users whose latest outcome is a refusal (progress counts them as failed)."""
    latest: dict[str, str | None] = {}
    for event in sorted(events, key=lambda e: e.timestamp):
        if event.kind is StepEventKind.OUTPUT:
            latest[event.user] = event.status
        elif event.kind in (StepEventKind.FAILURE, StepEventKind.STOPPED, StepEventKind.START):
            latest[event.user] = None
    return sum(1 for status in latest.values() if status == "refused")


def month_users(progress: Progress, refused: int) -> dict[str, int]:
    """``passport_month_users``'s states; ``stopped`` is the part of ``remaining`` whose step was
    stopped (never started, canceled, halted). ``planned`` and ``remaining`` are left out until
    the month's plan is known."""
    states = {
        "covered": progress.completed,
        "failed": progress.failed - refused,
        "refused": refused,
        "skipped": progress.skipped,
        "stopped": progress.stopped,
    }
    if progress.total is not None:
        states["planned"] = progress.total
        states["remaining"] = progress.remaining or 0
    return states


@dataclass
class Histogram:
    """Cumulative bucket counts, as Prometheus's histogram type has them."""

    bounds: tuple[float, ...] = LATENCY_BUCKETS_S
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def observe(self, value: float) -> None:
        if not self.counts:
            self.counts = [0] * len(self.bounds)
        for index in range(bisect.bisect_left(self.bounds, value), len(self.bounds)):
            self.counts[index] += 1
        self.total += value
        self.count += 1

    def buckets(self) -> list[tuple[str, int]]:
        counts = self.counts or [0] * len(self.bounds)
        return [(repr(b), c) for b, c in zip(self.bounds, counts, strict=True)] + [
            ("+Inf", self.count)
        ]


@dataclass
class MonthFacts:
    """A month's step events and plans, by run (a run found refused is dropped whole)."""

    events: dict[str, list[StepEvent]] = field(default_factory=dict)
    plans: dict[str, tuple[float, int]] = field(default_factory=dict)  # run → (when, total)
    paid: Counter = field(default_factory=Counter)
    _users: dict[str, int] | None = None
    _progress: Progress | None = None

    def add_event(self, run_id: str, event: StepEvent) -> None:
        self.events.setdefault(run_id, []).append(event)
        self._users = None

    def add_plan(self, run_id: str, timestamp: float, total: int) -> None:
        self.plans[run_id] = (timestamp, total)
        self._users = None

    def drop_run(self, run_id: str) -> None:
        self.events.pop(run_id, None)
        self.plans.pop(run_id, None)
        self._users = None

    def progress(self) -> Progress:
        """The month's progress, recomputed only after new events."""
        if self._users is None or self._progress is None:
            events = [event for run in self.events.values() for event in run]
            total = max(self.plans.values())[1] if self.plans else None  # the latest plan
            self._progress = compute_progress(total, events, 0.0, 0.0)
            self._users = month_users(self._progress, refused_users(events))
        return self._progress

    def users(self) -> dict[str, int]:
        self.progress()
        assert self._users is not None
        return self._users
