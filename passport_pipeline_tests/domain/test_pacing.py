"""The pacing decisions: slow start, multiplicative decrease on a per-minute 429 with Google's
quota as the ceiling, additive climb back, the operator's limit, and the 60 s window."""

from __future__ import annotations

import pytest

from passport_pipeline.domain import pacing
from passport_pipeline.domain.pacing import Pace


def test_without_a_limit_a_deployment_starts_slow_and_doubles_its_rate_with_answers():
    pace = pacing.start(None)
    assert (pace.allowed, pace.slow_start) == (pacing.START_RATE, True)
    for _ in range(10):
        pace = pacing.after_usable(pace)
    assert pace.allowed == pacing.START_RATE + 10 * pacing.SLOW_START_STEP


def test_with_a_limit_it_starts_at_the_limit_and_never_passes_it():
    pace = pacing.start(60)
    assert pace.allowed == 60
    for _ in range(50):
        pace = pacing.after_usable(pace)
    assert pace.allowed == 60 and pace.rate == 60


@pytest.mark.parametrize(
    ("rate", "quota", "expected_rate", "expected_allowed"),
    [
        (100.0, 60.0, 30.0, 30.0),  # halved from what was allowed (the quota), not from 100
        (40.0, 60.0, 20.0, 20.0),
        (40.0, None, 20.0, 20.0),  # no quota named: halved all the same
        (1.0, 10.0, 1.0, 1.0),  # never below one a minute
    ],
)
def test_a_per_minute_429_halves_the_rate_and_google_s_quota_becomes_its_ceiling(
    rate, quota, expected_rate, expected_allowed
):
    pace = pacing.after_rate_limited(Pace(rate=rate), quota, now=1000.0)
    assert (pace.rate, pace.allowed, pace.ceiling, pace.slow_start) == (
        expected_rate,
        expected_allowed,
        quota,
        False,
    )


def test_a_burst_of_429s_halves_the_rate_once_a_minute():
    pace = pacing.after_rate_limited(Pace(rate=100.0), 60.0, now=1000.0)
    for second in range(1, 30):  # the rest of the burst, within the minute
        pace = pacing.after_rate_limited(pace, 60.0, now=1000.0 + second)
    assert pace.rate == 30.0
    assert pacing.after_rate_limited(pace, 60.0, now=1061.0).rate == 15.0


def test_after_a_429_the_rate_climbs_back_by_one_to_the_quota_and_stays_there():
    pace = pacing.after_rate_limited(Pace(rate=90.0), 60.0, now=0.0)
    climbed = [pace := pacing.after_usable(pace) for _ in range(40)]
    assert [p.allowed for p in climbed[:3]] == [31.0, 32.0, 33.0]
    assert climbed[-1].allowed == 60.0 and climbed[-1].rate == 60.0


def test_an_operator_limit_applies_at_once_and_removing_it_keeps_the_learned_quota():
    pace = pacing.after_rate_limited(Pace(rate=80.0), 50.0, now=0.0)
    limited = pacing.with_limit(pace, 10)
    assert limited.allowed == 10
    unlimited = pacing.with_limit(limited, None)
    assert unlimited.limit is None and unlimited.ceiling == 50.0
    with pytest.raises(ValueError, match="positive"):
        pacing.with_limit(pace, 0)


@pytest.mark.parametrize(
    ("last_start", "allowed", "now", "wait"),
    [
        (None, 5, 100.0, 0.0),  # nothing started yet
        (100.0, 60, 100.0, 1.01),  # a start a second, and a little more
        (90.0, 5, 100.0, 2.12),  # 12.12 s apart
        (50.0, 5, 100.0, 0.0),
        (100.0, 6000, 100.0, 0.0101),
    ],
)
def test_starts_are_spaced_so_no_minute_holds_more_than_the_rate(last_start, allowed, now, wait):
    assert pacing.wait_for_rate(last_start, allowed, now) == pytest.approx(wait)


def test_the_width_grows_by_one_a_usable_answer_up_to_the_most():
    assert pacing.widen(pacing.START_WIDTH, 50) == pacing.START_WIDTH + 1
    assert pacing.widen(50, 50) == 50


def test_the_pace_reads_for_people():
    pace = pacing.after_rate_limited(Pace(rate=100.0, limit=80.0), 60.0, now=0.0)
    assert pace.describe() == "30/min (limit 80), Google's quota 60/min"
    assert pacing.start(None).describe() == "60/min, slow start"


@pytest.mark.parametrize(
    ("pace", "width", "line"),
    [
        (None, None, None),  # nothing paced yet (the local model, batch mode)
        (Pace(rate=42.4), 12, "pace 42/min, width 12"),
        (Pace(limit=30, rate=42), None, "pace 30/min"),  # before the run's first usable answer
        (Pace(rate=80, ceiling=20), 5, "pace 20/min, width 5"),  # Google's quota bounds it
    ],
)
def test_the_pace_as_progress_shows_it(pace, width, line):
    assert pacing.pace_line(pace, width) == line
