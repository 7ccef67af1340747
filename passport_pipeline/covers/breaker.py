"""The run's streak of unusable model answers, kept in the run's own event log.

A run's cover steps run in threads, in processes or on other machines (the executor decides),
so the count lives where every step can read it:
the run's events. A user who fails on an unusable answer first records it (an observation of
the covers asset, shown in the UI) and only then reads the run's latest outcomes: of two steps
failing at once, at least the later reader sees both, so a streak is never lost to a race.
New covers are the cover steps' own outputs (``status: generated``).
"""

from __future__ import annotations

from dagster import DagsterEventType, OpExecutionContext

from passport_pipeline.covers.events import UNUSABLE_KEY, unusable_answer
from passport_pipeline.domain.breaker import GENERATED, HALT_AFTER_UNUSABLE, unusable_streak

_PAGE = 200


def record_unusable_and_check(
    context: OpExecutionContext, month: str, user_id: int, reason: str
) -> str | None:
    """Record this user's unusable answer; the reason to halt the run on, or None."""
    context.log_event(unusable_answer(month, user_id, reason))
    return unusable_streak(latest_outcomes(context, HALT_AFTER_UNUSABLE), HALT_AFTER_UNUSABLE)


def latest_outcomes(context: OpExecutionContext, wanted: int) -> list[str]:
    """The run's last ``wanted`` model outcomes, oldest first (newest events read first)."""
    found: list[str] = []
    cursor = None
    while len(found) < wanted:
        page = context.instance.get_records_for_run(
            context.run_id,
            cursor=cursor,
            of_type={DagsterEventType.ASSET_OBSERVATION, DagsterEventType.STEP_OUTPUT},
            limit=_PAGE,
            ascending=False,
        )
        for record in page.records:
            event = record.event_log_entry.dagster_event
            if event is None:
                continue
            if event.event_type is DagsterEventType.ASSET_OBSERVATION:
                value = event.asset_observation_data.asset_observation.metadata.get(UNUSABLE_KEY)
            else:
                status = event.step_output_data.metadata.get("status")
                value = status if status is not None and status.value == GENERATED else None
            if value is not None:
                found.append(str(value.value))
        if not page.has_more or not page.records:
            break
        cursor = page.cursor
    return list(reversed(found[:wanted]))
