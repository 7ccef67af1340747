import pytest

from passport_pipeline.domain.progress import (
    InFlight,
    StepEvent,
    StepEventKind,
    compute_progress,
    cover_step_intervals,
    failure_kind,
    in_flight,
    progress_line,
    steady_window,
)

K = StepEventKind


def events(*rows):
    return [StepEvent(user, kind, ts, status) for user, kind, ts, status in rows]


def test_counts_and_percent_mid_run():
    log = events(
        ("user_1", K.START, 2, None),
        ("user_1", K.OUTPUT, 3, "generated"),
        ("user_1", K.SUCCESS, 3, None),
        ("user_2", K.START, 2, None),
        ("user_2", K.OUTPUT, 3, "skipped"),
        ("user_2", K.SUCCESS, 3, None),
        ("user_3", K.START, 2, None),
        ("user_3", K.FAILURE, 4, None),
        ("user_4", K.START, 2, None),
        ("user_4", K.RETRY, 4, None),
    )
    progress = compute_progress(5, log, started_at=0.0, ended_at=10.0)
    assert progress.as_dict() == {
        "total": 5,
        "completed": 1,
        "failed": 1,
        "skipped": 1,
        "in_flight": 1,
        "remaining": 2,
        "percent": 60.0,
        "elapsed_s": 10.0,
        "estimated_cost_usd": 0.0,
        "stopped": 0,
    }


def test_a_later_success_in_a_re_execution_replaces_the_failure():
    log = events(
        ("user_3", K.FAILURE, 4, None),
        ("user_3", K.START, 20, None),
        ("user_3", K.OUTPUT, 21, "generated"),
        ("user_3", K.SUCCESS, 21, None),
    )
    progress = compute_progress(1, log, 0, 30)
    assert (progress.completed, progress.failed, progress.percent) == (1, 0, 100.0)


def test_a_refused_user_counts_as_failed_though_its_step_succeeded():
    log = events(
        ("user_1", K.START, 1, None),
        ("user_1", K.OUTPUT, 2, "refused"),
        ("user_1", K.SUCCESS, 2, None),
        ("user_2", K.START, 1, None),
        ("user_2", K.OUTPUT, 3, "generated"),
        ("user_2", K.SUCCESS, 3, None),
    )
    progress = compute_progress(2, log, 0, 5)
    assert (progress.completed, progress.failed, progress.remaining) == (1, 1, 0)


@pytest.mark.parametrize(("total", "percent", "remaining"), [(None, None, None), (0, 100.0, 0)])
def test_unknown_or_empty_total(total, percent, remaining):
    progress = compute_progress(total, [], 0, 1)
    assert (progress.percent, progress.remaining) == (percent, remaining)


def test_step_intervals_pair_each_attempt_start_with_its_end():
    log = events(
        ("user_1", K.START, 0, None),
        ("user_1", K.RETRY, 2, None),
        ("user_1", K.START, 5, None),
        ("user_1", K.SUCCESS, 6, None),
        ("user_2", K.START, 1, None),  # still running: no interval yet
    )
    assert cover_step_intervals(log) == [(0, 2), (5, 6)]


@pytest.mark.parametrize(
    ("intervals", "peak", "mean"),
    [
        ([], 0, 0.0),
        ([(0, 10)], 1, 1.0),
        ([(0, 10), (0, 10), (0, 10)], 3, 3.0),
        ([(0, 10), (5, 15)], 2, 1.33),  # 20 step-seconds over 15 s
        ([(0, 1), (2, 3)], 1, 0.67),  # a gap counts as zero in flight
    ],
)
def test_in_flight(intervals, peak, mean):
    assert in_flight(intervals) == InFlight(peak, mean)


@pytest.mark.parametrize(
    ("intervals", "window", "peak", "mean"),
    [
        ([(0, 10), (5, 15)], (5, 10), 2, 2.0),  # both in flight the whole window
        ([(0, 10), (5, 15)], (0, 20), 2, 1.0),  # 20 step-seconds over 20 s: the tail counts 0
        ([(0, 4), (6, 10)], (2, 8), 1, 0.67),  # 2 + 2 step-seconds over 6 s
        ([(0, 4), (4, 8)], (0, 8), 1, 1.0),  # back to back: one at a time, never two
    ],
)
def test_in_flight_over_a_window(intervals, window, peak, mean):
    """The mean counts only the window; the peak is over every interval."""
    assert in_flight(intervals, window) == InFlight(peak, mean)


@pytest.mark.parametrize(
    ("intervals", "width", "window"),
    [
        # A pool of 2: full from the second start (1) to the second-from-last end (10).
        ([(0, 10), (1, 11), (2, 12)], 2, (1, 11)),
        ([(0, 10), (1, 11), (2, 12)], 1, (0, 12)),
        ([(0, 10), (1, 11), (2, 12)], 3, (2, 10)),
        ([(0, 10)], 2, None),  # fewer intervals than the pool is wide
        ([(0, 1), (5, 6)], 2, None),  # the second starts after the first has ended
    ],
)
def test_steady_window(intervals, width, window):
    assert steady_window(intervals, width) == window


@pytest.mark.parametrize(
    ("costs", "expected"),
    [([0.039, 0.039, 0.0], 0.078), ([], 0.0), ([0.0195] * 3, 0.0585)],
)
def test_cost_so_far_sums_the_outputs(costs, expected):
    log = [StepEvent(f"user_{i}", K.OUTPUT, i, "generated", cost) for i, cost in enumerate(costs)]
    assert compute_progress(len(costs), log, 0, 1).estimated_cost_usd == expected


@pytest.mark.parametrize(
    ("total", "line"),
    [
        (4, "2 of 4 users done (50%): 1 covered, 1 failed, 0 skipped; 2 remaining, 1 in flight;"),
        (None, "2 of ? users done: 1 covered, 1 failed, 0 skipped; ? remaining, 1 in flight;"),
    ],
)
def test_progress_line_reads_as_the_run_page_shows_it(total, line):
    log = [
        StepEvent("user_1", K.OUTPUT, 1, "generated", 0.039),
        StepEvent("user_1", K.SUCCESS, 2),
        StepEvent("user_2", K.FAILURE, 3),
        StepEvent("user_3", K.START, 4),
    ]
    text = progress_line(compute_progress(total, log, 0, 5))
    assert text.startswith(line) and text.endswith("$0.04 so far")
    paced = progress_line(compute_progress(total, log, 0, 5), "pace 42/min, width 12")
    assert paced == f"{text}; pace 42/min, width 12"


def test_stopped_users_are_remaining_until_a_later_run_decides_them():
    # A stopped run: user_1 covered, user_2 failed for good, user_3 canceled mid-call, user_4
    # never started. Only the first two are done; the cost counts the failed user's paid call.
    log = [
        StepEvent("user_1", K.OUTPUT, 3, "generated", 0.039),
        StepEvent("user_1", K.SUCCESS, 3),
        StepEvent("user_2", K.START, 2),
        StepEvent("user_2", K.FAILURE, 4, None, 0.078),
        StepEvent("user_3", K.START, 2),
        StepEvent("user_3", K.STOPPED, 5),
        StepEvent("user_4", K.STOPPED, 5),
    ]
    stopped = compute_progress(4, log, started_at=0.0, ended_at=10.0)
    assert (stopped.completed, stopped.failed, stopped.remaining, stopped.percent) == (1, 1, 2, 50)
    assert stopped.stopped == 2
    assert stopped.in_flight == 0
    assert stopped.estimated_cost_usd == pytest.approx(0.117)
    # The re-execution covers both: the month is done.
    later = [
        *log,
        StepEvent("user_3", K.OUTPUT, 7, "generated", 0.039),
        StepEvent("user_3", K.SUCCESS, 7),
        StepEvent("user_4", K.OUTPUT, 8, "generated", 0.039),
        StepEvent("user_4", K.SUCCESS, 8),
    ]
    done = compute_progress(4, later, started_at=0.0, ended_at=10.0)
    assert (done.completed, done.failed, done.remaining, done.percent) == (3, 1, 0, 100)
    assert done.stopped == 0


@pytest.mark.parametrize(
    ("facts", "kind"),
    [
        ({}, StepEventKind.FAILURE),
        ({"started": False}, StepEventKind.STOPPED),  # never started (GraphQL's step stats)
        ({"interrupted": True}, StepEventKind.STOPPED),  # Ctrl-C, Terminate, never started
        ({"markers": {"canceled": True}}, StepEventKind.STOPPED),
        ({"markers": ["halted", "user_id"]}, StepEventKind.STOPPED),
        ({"markers": ["user_id", "reason"]}, StepEventKind.FAILURE),
    ],
)
def test_a_failed_step_is_a_stop_or_a_failure_by_one_rule(facts, kind):
    assert failure_kind(**facts) is kind
