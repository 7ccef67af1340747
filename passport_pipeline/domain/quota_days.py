"""When a month halted by Gemini's daily quota goes on by itself: the resume decisions.

Pure logic; ``covers/quota_resume.py`` gathers the facts (the month's quota halts and its
automatic resumes so far, from the instance's event log), passes the time in, and acts. Google
resets daily quotas at midnight Pacific time (America/Los_Angeles, PST or PDT as the date
says); a 429 that gives ``RetryInfo.retryDelay`` is taken at its word instead. A month is
resumed at most ``most`` times (``PASSPORT_QUOTA_RESUME_DAYS``); after that a person decides,
since a quota that runs out day after day wants a higher quota or a smaller month, not another
day's wait.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

PACIFIC = ZoneInfo("America/Los_Angeles")
SEOUL = ZoneInfo("Asia/Seoul")
DEFAULT_RESUME_DAYS = 3
# A minute past Google's midnight: our clock and Google's need not agree to the second.
RESET_MARGIN_S = 60.0


@dataclass(frozen=True)
class QuotaHalt:
    """A run halted by a per-day 429, and when its month may go on (seconds since the epoch)."""

    month: str
    run_id: str
    halted_at: float
    resume_at: float


class Action(StrEnum):
    WAIT = "wait"  # the quota has not reset yet
    RESUME = "resume"  # re-execute the halted run from failure now
    GIVE_UP = "give_up"  # the month's automatic resumes are used up: a person is needed


@dataclass(frozen=True)
class Decision:
    action: Action
    halt: QuotaHalt
    resume_number: int  # which automatic resume of the month this is (or would be)
    most: int

    def describe(self) -> str:
        """One line for people: the sensor's tick and the halt alert say it."""
        month, run = self.halt.month, self.halt.run_id
        if self.action is Action.GIVE_UP:
            return (
                f"{month}: run {run} halted on the daily quota and the month's {self.most} "
                f"automatic resumes are used up: a person is needed (raise the quota or "
                f"re-execute the run from failure after {describe_time(self.halt.resume_at)})"
            )
        when = describe_time(self.halt.resume_at)
        verb = "resuming now" if self.action is Action.RESUME else "resumes by itself"
        return (
            f"{month}: run {run} halted on the daily quota; {verb} at {when} "
            f"(automatic resume {self.resume_number} of {self.most})"
        )


def next_pacific_midnight(now: float) -> float:
    """The next midnight in America/Los_Angeles after ``now`` (DST-correct: a day there is 23,
    24 or 25 hours long)."""
    today = datetime.fromtimestamp(now, PACIFIC).date()
    return datetime.combine(today + timedelta(days=1), time(0), tzinfo=PACIFIC).timestamp()


def resume_time(halted_at: float, retry_delay_s: float | None) -> float:
    """When the quota is back: after Google's own ``retryDelay`` if the 429 gave one, else a
    minute past the next Pacific midnight."""
    if retry_delay_s is not None and retry_delay_s > 0:
        return halted_at + retry_delay_s
    return next_pacific_midnight(halted_at) + RESET_MARGIN_S


def decide(halt: QuotaHalt, now: float, resumes_done: int, most: int) -> Decision:
    """What to do with a month's latest quota halt, at ``now``, after ``resumes_done``
    automatic resumes of the month."""
    number = resumes_done + 1
    if resumes_done >= most:
        return Decision(Action.GIVE_UP, halt, number, most)
    action = Action.RESUME if now >= halt.resume_at else Action.WAIT
    return Decision(action, halt, number, most)


def describe_time(moment: float) -> str:
    """A moment as operators in Seoul and Google's quota page read it: KST, with UTC and
    Pacific beside it: ``2026-12-08 17:01 KST (08:01 UTC, 2026-12-08 00:01 PST Pacific)``."""
    seoul = datetime.fromtimestamp(moment, SEOUL)
    utc = datetime.fromtimestamp(moment, UTC)
    pacific = datetime.fromtimestamp(moment, PACIFIC)
    return (
        f"{seoul:%Y-%m-%d %H:%M} KST ({utc:%H:%M} UTC, "
        f"{pacific:%Y-%m-%d %H:%M} {pacific.tzname()} Pacific)"
    )
