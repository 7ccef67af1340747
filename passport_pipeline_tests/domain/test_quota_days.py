"""When a month halted by the daily quota goes on: Google's reset at midnight Pacific (PST or
PDT), its RetryInfo when given, and at most the configured number of resumes a month."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from passport_pipeline.domain.quota_days import (
    RESET_MARGIN_S,
    Action,
    QuotaHalt,
    decide,
    describe_time,
    next_pacific_midnight,
    resume_time,
)

PACIFIC = ZoneInfo("America/Los_Angeles")
UTC = ZoneInfo("UTC")


def at(text: str, zone: ZoneInfo = PACIFIC) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=zone).timestamp()


@pytest.mark.parametrize(
    ("halted", "midnight_utc"),
    [
        # Standard time (PST, UTC-8), and summer time (PDT, UTC-7).
        (at("2026-12-07 15:30"), "2026-12-08 08:00"),
        (at("2026-07-07 15:30"), "2026-07-08 07:00"),
        # The night before summer time starts (2026-03-08 02:00 PST → 03:00 PDT): the next
        # midnight is already PDT; the day that follows is 23 hours long.
        (at("2026-03-07 23:59"), "2026-03-08 08:00"),
        (at("2026-03-08 00:30"), "2026-03-09 07:00"),
        # Summer time ends (2026-11-01 02:00 PDT → 01:00 PST): that day is 25 hours long.
        (at("2026-10-31 23:00"), "2026-11-01 07:00"),
        (at("2026-11-01 01:30"), "2026-11-02 08:00"),
        # Just after a midnight: the next one, a whole day later.
        (at("2026-12-08 00:00:01"), "2026-12-09 08:00"),
        # Late evening in Seoul is morning in California: Google's day has not turned yet.
        (at("2026-12-08 23:00", ZoneInfo("Asia/Seoul")), "2026-12-09 08:00"),
    ],
)
def test_the_quota_resets_at_the_next_midnight_pacific(halted, midnight_utc):
    assert next_pacific_midnight(halted) == at(midnight_utc, UTC)
    # Without RetryInfo the month goes on a minute after that midnight.
    assert resume_time(halted, None) == at(midnight_utc, UTC) + RESET_MARGIN_S


@pytest.mark.parametrize(
    ("retry_delay_s", "after_s"),
    [(17.0, 17.0), (3600.0, 3600.0), (0.0, None), (None, None)],
)
def test_retry_info_is_taken_at_its_word_when_given(retry_delay_s, after_s):
    halted = at("2026-12-07 15:30")
    expected = halted + after_s if after_s else at("2026-12-08 08:01", UTC)
    assert resume_time(halted, retry_delay_s) == expected


HALT = QuotaHalt("2026-11", "run-1", at("2026-12-07 15:30"), at("2026-12-08 00:01"))


@pytest.mark.parametrize(
    ("now", "resumes_done", "most", "action", "number"),
    [
        (at("2026-12-07 23:59"), 0, 3, Action.WAIT, 1),  # the quota has not reset yet
        (at("2026-12-08 00:00:30"), 0, 3, Action.WAIT, 1),  # reset, within the margin
        (at("2026-12-08 00:01"), 0, 3, Action.RESUME, 1),
        (at("2026-12-10 09:00"), 2, 3, Action.RESUME, 3),  # the last automatic resume
        (at("2026-12-10 09:00"), 3, 3, Action.GIVE_UP, 4),  # used up: a person is needed
        (at("2026-12-07 23:59"), 3, 3, Action.GIVE_UP, 4),  # said at once, not after the wait
        (at("2026-12-08 00:01"), 0, 0, Action.GIVE_UP, 1),  # PASSPORT_QUOTA_RESUME_DAYS=0
    ],
)
def test_the_decision_is_from_the_halt_the_time_and_the_resumes_so_far(
    now, resumes_done, most, action, number
):
    decision = decide(HALT, now, resumes_done, most)
    assert (decision.action, decision.resume_number, decision.most) == (action, number, most)


def test_the_decision_says_when_in_seoul_utc_and_pacific_time():
    waiting = decide(HALT, at("2026-12-07 23:00"), 0, 3).describe()
    assert waiting == (
        "2026-11: run run-1 halted on the daily quota; resumes by itself at "
        "2026-12-08 17:01 KST (08:01 UTC, 2026-12-08 00:01 PST Pacific) "
        "(automatic resume 1 of 3)"
    )
    used_up = decide(HALT, at("2026-12-08 01:00"), 3, 3).describe()
    assert "the month's 3 automatic resumes are used up: a person is needed" in used_up


def test_summer_time_is_named_pdt():
    assert describe_time(at("2026-07-08 00:01")).endswith(
        "(07:01 UTC, 2026-07-08 00:01 PDT Pacific)"
    )
