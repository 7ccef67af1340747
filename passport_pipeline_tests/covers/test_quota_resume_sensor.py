"""The quota-resume sensor's reading of the instance: which halted months it resumes, which it
leaves alone, when it says a person is needed. Runs as the job leaves them, on a temporary
instance; the launcher records what it is asked (``test_quota_resume.py`` runs the real one)."""

from __future__ import annotations

import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from dagster import DagsterRun, DagsterRunStatus, build_sensor_context, instance_for_test

from passport_pipeline.covers import events
from passport_pipeline.covers.names import JOB_NAME, PARTITION_TAG
from passport_pipeline.covers.quota_resume import quota_resume_sensor

MONTH = "2026-10"
PACIFIC = ZoneInfo("America/Los_Angeles")
HALTED_AT = datetime(2026, 12, 7, 15, 30, tzinfo=PACIFIC).timestamp()
RESUME_AT = datetime(2026, 12, 8, 0, 1, tzinfo=PACIFIC).timestamp()


def _month_run(instance, status: DagsterRunStatus, month: str = MONTH) -> str:
    run = DagsterRun(job_name=JOB_NAME, run_id=str(uuid.uuid4()), tags={PARTITION_TAG: month})
    instance.add_run(run.with_status(status))
    return run.run_id


def _halt(instance, run_id: str, month: str = MONTH) -> None:
    instance.report_runless_asset_event(events.quota_halt(month, run_id, HALTED_AT, RESUME_AT))


def _tick(instance, now: float, most: int = 3) -> tuple[str, list[str]]:
    launched: list[str] = []
    sensor = quota_resume_sensor(
        JOB_NAME, most, lambda _instance, run_id: launched.append(run_id), clock=lambda: now
    )
    return sensor(build_sensor_context(instance=instance)).skip_message, launched


def test_the_sensor_resumes_each_halted_month_once_and_counts_its_resumes():
    with instance_for_test() as instance:
        first = _month_run(instance, DagsterRunStatus.FAILURE)
        _halt(instance, first)
        other = _month_run(instance, DagsterRunStatus.FAILURE, "2026-09")
        _halt(instance, other, "2026-09")
        assert _tick(instance, RESUME_AT - 1)[1] == []
        said, launched = _tick(instance, RESUME_AT)
        assert launched == [first, other]
        assert said.count("resuming now") == 2 and "(automatic resume 1 of 3)" in said
        # The re-execution of October halted again the next day: its second resume.
        second = _month_run(instance, DagsterRunStatus.FAILURE)
        instance.report_runless_asset_event(
            events.quota_halt(MONTH, second, HALTED_AT + 86400, RESUME_AT + 86400)
        )
        _month_run(instance, DagsterRunStatus.SUCCESS, "2026-09")  # September's resume ended
        said, launched = _tick(instance, RESUME_AT + 86400)
        assert launched == [second]
        assert said == (
            f"{MONTH}: run {second} halted on the daily quota; resuming now at "
            "2026-12-09 17:01 KST (08:01 UTC, 2026-12-09 00:01 PST Pacific) "
            "(automatic resume 2 of 3)"
        )


@pytest.mark.parametrize(
    ("after", "why"),
    [
        (DagsterRunStatus.STARTED, "a person launched the month again: it is running"),
        (DagsterRunStatus.SUCCESS, "a person re-executed it already"),
    ],
)
def test_a_month_someone_already_went_on_with_is_left_alone(after, why):
    with instance_for_test() as instance:
        _halt(instance, _month_run(instance, DagsterRunStatus.FAILURE))
        _month_run(instance, after)
        assert _tick(instance, RESUME_AT + 3600) == (
            "no month is halted on the daily quota",
            [],
        ), why


def test_a_run_still_ending_is_not_resumed_yet():
    with instance_for_test() as instance:
        _halt(instance, _month_run(instance, DagsterRunStatus.CANCELING))
        assert _tick(instance, RESUME_AT + 3600)[1] == []


def test_past_the_month_s_resumes_the_sensor_says_a_person_is_needed():
    with instance_for_test() as instance:
        for n in range(3):
            run_id = _month_run(instance, DagsterRunStatus.FAILURE)
            _halt(instance, run_id)
            instance.report_runless_asset_event(events.quota_resume(MONTH, run_id, n + 1, 3, 0.0))
            _month_run(instance, DagsterRunStatus.FAILURE)  # each resume ran, and halted
        last = _month_run(instance, DagsterRunStatus.FAILURE)
        _halt(instance, last)
        said, launched = _tick(instance, RESUME_AT + 3600)
        assert launched == []
        assert f"run {last} halted on the daily quota and the month's 3 automatic" in said
        assert "a person is needed" in said


def test_a_resume_that_made_no_run_is_named():
    with instance_for_test() as instance:
        run_id = _month_run(instance, DagsterRunStatus.FAILURE)
        _halt(instance, run_id)
        assert _tick(instance, RESUME_AT)[1] == [run_id]  # the launcher made nothing
        assert _tick(instance, RESUME_AT + 60) == ("no month is halted on the daily quota", [])
        said, launched = _tick(instance, RESUME_AT + 3600)
        assert launched == []
        assert f"the automatic re-execution of run {run_id} made no run" in said
