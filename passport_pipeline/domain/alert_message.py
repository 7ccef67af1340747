"""The alert a person gets when a month's run stops short: failed, canceled or halted.

Pure: the facts come in (from the run, its tags and its event log, gathered by ``alerts.py``),
the message's subject and text go out. Only values we produce go in: the month, counts, cost,
run id and link, and a halt reason (our own words, which never hold a secret).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from passport_pipeline.domain.quota_days import Action, Decision


class StopKind(StrEnum):
    FAILED = "failed"
    CANCELED = "canceled"
    HALTED = "halted"


@dataclass(frozen=True)
class StoppedMonth:
    """What the alert says about one stopped run."""

    job_name: str
    run_id: str
    kind: StopKind
    month: str | None
    total: int | None
    completed: int
    failed: int
    skipped: int
    remaining: int | None
    percent: float | None
    estimated_cost_usd: float | None = None
    halt_reason: str | None = None
    ui_url: str | None = None
    quota: Decision | None = None  # a halt on the daily quota: when the month resumes, if it does

    @property
    def run_url(self) -> str | None:
        return f"{self.ui_url.rstrip('/')}/runs/{self.run_id}" if self.ui_url else None


@dataclass(frozen=True)
class AlertMessage:
    subject: str
    text: str

    @property
    def slack_text(self) -> str:
        """Slack's mrkdwn: the subject in bold above the same lines."""
        return f"*{self.subject}*\n{self.text}"


_WHAT_HAPPENED = {
    StopKind.FAILED: "failed",
    StopKind.CANCELED: "was canceled",
    StopKind.HALTED: "was halted",
}

_WHAT_TO_DO = {
    StopKind.FAILED: (
        "Look at the failed steps on the run page, fix their cause if it is not passing, then "
        "re-execute the run from failure"
    ),
    StopKind.CANCELED: "When the month should finish, re-execute the run from failure",
    StopKind.HALTED: (
        "Fix the cause above first (every further call would fail the same way), then "
        "re-execute the run from failure"
    ),
}


def build_alert(stopped: StoppedMonth) -> AlertMessage:
    """Subject and text naming the month, what happened, the counts, the run and what to do."""
    month = stopped.month or "(no month)"
    subject = f"Passport covers {month}: the run {_WHAT_HAPPENED[stopped.kind]}"
    lines = [f"Month {month}: run {stopped.run_id} of {stopped.job_name} {_status(stopped)}."]
    lines.append(f"Users: {_counts(stopped)}.")
    if stopped.estimated_cost_usd is not None:
        lines.append(f"Estimated cost so far: ${stopped.estimated_cost_usd:.4f}.")
    lines.append(f"Run: {stopped.run_url or stopped.run_id}")
    if stopped.quota is not None:
        lines.append(f"Daily quota: {stopped.quota.describe()}.")
    if stopped.quota is not None and stopped.quota.action is not Action.GIVE_UP:
        lines.append(
            "What to do: nothing, the month goes on by itself then (to go on sooner, raise the "
            "quota on Google's quota page and re-execute the run from failure: run page → "
            f"Re-execute → From failure, or `python -m passport_pipeline.cli.reexecute "
            f"{stopped.run_id}`). Users who already have their cover are not paid for again."
        )
        return AlertMessage(subject=subject, text="\n".join(lines))
    lines.append(
        f"What to do: {_WHAT_TO_DO[stopped.kind]} (run page → Re-execute → From failure, or "
        f"`python -m passport_pipeline.cli.reexecute {stopped.run_id}`). Users who already have "
        "their cover are not drawn or paid for again."
    )
    return AlertMessage(subject=subject, text="\n".join(lines))


def _status(stopped: StoppedMonth) -> str:
    if stopped.kind is StopKind.HALTED:
        reason = stopped.halt_reason or "no reason recorded"
        return f"was halted: {reason}"
    return _WHAT_HAPPENED[stopped.kind]


def _counts(stopped: StoppedMonth) -> str:
    total = "unknown" if stopped.total is None else str(stopped.total)
    remaining = "unknown" if stopped.remaining is None else str(stopped.remaining)
    counts = (
        f"{total} total, {stopped.completed} completed, {stopped.failed} failed, "
        f"{stopped.skipped} skipped, {remaining} remaining"
    )
    if stopped.percent is not None:
        counts += f" ({stopped.percent:g} % done)"
    return counts
