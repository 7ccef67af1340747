"""A month's progress folded from the webserver's view of its runs (what backend_api reads)."""

from __future__ import annotations

import pytest

from passport_pipeline.domain.month_runs import refused_tag
from passport_pipeline.domain.month_status import RunView, StepStat, fold_month, run_group

NOW = 10_000.0


def stat(user: int, status: str, start: float, end: float | None = None) -> StepStat:
    return StepStat(f"user_{user}", status, start, end)


def run(
    run_id, root=None, status="STARTED", created=0.0, start=100.0, end=None, tags=None, steps=()
):
    return RunView(
        run_id=run_id,
        root_run_id=root or run_id,
        status=status,
        creation_time=created,
        start_time=start,
        end_time=end,
        tags={"dagster/partition": "2026-10", **(tags or {})},
        step_stats=list(steps),
    )


TOTAL_3 = {"passport/total": "3", "passport/unknown_user_ids": "[99]"}


def test_a_running_run_counts_finished_and_in_flight_users():
    steps = [
        stat(1, "SUCCESS", 102, 110),
        stat(2, "FAILURE", 102, 111),
        stat(3, "IN_PROGRESS", 102),
    ]
    progress = fold_month("2026-10", [run("a", tags=TOTAL_3, steps=steps)], None, NOW)
    assert (progress.total, progress.completed, progress.failed, progress.in_flight) == (3, 1, 1, 1)
    assert (progress.remaining, progress.percent) == (1, 66.7)
    assert progress.elapsed_s == NOW - 100
    assert progress.unknown_user_ids == [99]
    assert progress.message == "running: 2 of 3 users done (1 failed), 1 in progress"


def test_a_reexecution_that_covers_the_failed_users_leaves_no_failure():
    first = run(
        "a",
        status="FAILURE",
        end=120,
        tags=TOTAL_3,
        steps=[
            stat(1, "SUCCESS", 101, 105),
            stat(2, "FAILURE", 101, 106),
            stat(3, "FAILURE", 101, 107),
        ],
    )
    second = run(
        "b",
        root="a",
        status="SUCCESS",
        created=200,
        start=200,
        end=230,
        steps=[stat(2, "SUCCESS", 201, 210), stat(3, "SUCCESS", 201, 211)],
    )
    summary = {"run_id": "b", "generated": 2, "reused": 1, "skipped": 0, "failed": 0}
    progress = fold_month("2026-10", run_group([second, first]), summary, NOW)
    assert (progress.run_id, progress.run_ids, progress.status) == ("a", ["a", "b"], "SUCCESS")
    assert (progress.completed, progress.failed, progress.percent, progress.in_flight) == (
        3,
        0,
        100.0,
        0,
    )
    assert progress.elapsed_s == 230 - 100


def test_the_summary_splits_skipped_users_out_of_the_completed_ones():
    steps = [stat(user, "SUCCESS", 101, 102) for user in (1, 2, 3)]
    done = run("a", status="SUCCESS", end=130, tags=TOTAL_3, steps=steps)
    assert fold_month("2026-10", [done], None, NOW).completed == 3
    summary = {"run_id": "a", "generated": 1, "reused": 0, "skipped": 2, "failed": 0}
    progress = fold_month("2026-10", [done], summary, NOW)
    assert (progress.completed, progress.skipped, progress.percent) == (1, 2, 100.0)
    assert progress.message == "done: 1 covered, 2 skipped, 0 failed of 3"


def test_users_the_model_refused_count_as_failed_in_a_finished_month():
    steps = [stat(user, "SUCCESS", 101, 102) for user in (1, 2, 3)]
    done = run("a", status="SUCCESS", end=130, tags=TOTAL_3, steps=steps)
    summary = {"run_id": "a", "generated": 2, "reused": 0, "skipped": 0, "failed": 0}
    progress = fold_month("2026-10", [done], {**summary, "refused": 1}, NOW)
    assert (progress.completed, progress.failed, progress.percent) == (2, 1, 100.0)
    assert progress.message == "done: 2 covered, 0 skipped, 1 failed of 3"


@pytest.mark.parametrize(
    ("status", "tags", "message"),
    [
        ("QUEUED", {}, "queued: waits for the cover run before it to end (one at a time)"),
        ("STARTED", {}, "starting: finding the month's users"),
        (
            "FAILURE",
            {},
            "failed before any cover: the run could not start its users (see its logs)",
        ),
        ("CANCELED", TOTAL_3, "canceled after 0 of 3 users: launch the month again to finish it"),
    ],
)
def test_each_run_status_has_a_message(status, tags, message):
    assert fold_month("2026-10", [run("a", status=status, tags=tags)], None, NOW).message == message


def test_the_group_is_the_named_runs_or_else_the_latest_runs():
    old = run("a", created=1)
    old_retry = run("b", root="a", created=2)
    latest = run("c", created=3)
    runs = [latest, old_retry, old]
    assert [r.run_id for r in run_group(runs)] == ["c"]
    assert [r.run_id for r in run_group(runs, "b")] == ["a", "b"]
    assert run_group(runs, "zzz") == []
    assert run_group([]) == []


def test_a_step_that_failed_without_starting_is_remaining_and_refused_runs_are_left_out():
    steps = [
        stat(1, "SUCCESS", 102, 110),
        stat(2, "FAILURE", None, 111),
        stat(3, "FAILURE", 103, 111),
    ]
    stopped = run("a", status="CANCELED", end=112, tags=TOTAL_3, steps=steps)
    refused = run("b", root="a", status="FAILURE", created=5, tags=refused_tag("b", "x"))
    progress = fold_month("2026-10", run_group([stopped, refused]), None, NOW)
    assert progress.run_ids == ["a"]
    assert progress.status == "CANCELED"
    assert (progress.completed, progress.failed, progress.remaining) == (1, 1, 1)


@pytest.mark.parametrize(
    ("job_name", "selection", "covers"),
    [
        ("monthly_passport_covers", None, True),
        ("__ASSET_JOB", ["passport_covers"], True),  # launched from the asset's page
        ("__ASSET_JOB", ["another_asset"], False),
    ],
)
def test_the_backend_keeps_every_run_of_the_covers_whatever_launched_it(
    job_name, selection, covers
):
    view = RunView("a", "a", "SUCCESS", 0.0, 1.0, 2.0, {}, [], job_name, selection)
    assert view.runs_the_covers is covers
