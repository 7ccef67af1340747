"""A month halted by Gemini's daily quota finishes by itself once the quota resets: the halt is
driven through the fake's per-day window, the resume sensor is evaluated with a "now" injected
before and after the reset (no sleeping), and the re-execution goes the operators' way
(``cli.reexecute``, started by the sensor's own launcher). Paid calls are counted at the fake."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from dagster import DagsterRunStatus, RunsFilter, build_sensor_context

from passport_pipeline.cli.reexecute import PARENT_RUN_ID_TAG
from passport_pipeline.covers.alerts import stopped_month
from passport_pipeline.covers.names import HALT_TAG, JOB_NAME
from passport_pipeline.covers.progress import PROGRESS_TAG
from passport_pipeline.covers.quota_resume import (
    launch_detached,
    quota_facts,
    quota_resume_sensor,
)
from passport_pipeline.domain.alert_message import build_alert
from passport_pipeline_tests.support.dataset import UserRow, cover_urls, october, write_dataset
from passport_pipeline_tests.support.deployment import Deployment
from passport_pipeline_tests.support.fake_gemini import FakeGemini
from passport_pipeline_tests.support.fake_quotas import Quotas
from passport_pipeline_tests.support.waiting import wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]
API_KEY = "AIzaTEST-quota-days-key-000111222333"
USERS = 6  # titles "Trip 1" … "Trip 6": no title holds another
PER_DAY = 3
MONTH = "2026-10"
PACIFIC = ZoneInfo("America/Los_Angeles")


class Clock:
    """The fake's clock, moved by the test: Google's day turns when the test says."""

    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_month_halted_by_the_daily_quota_finishes_after_the_reset_paying_each_user_once(
    tmp_path, postgres_url, monkeypatch
):
    write_dataset(
        postgres_url,
        [UserRow(i, title=f"Trip {i}", visits=[(1 + i % 5, october(9))]) for i in range(1, 7)],
    )
    # Google's day, on the fake's own clock: noon Pacific, twelve hours before its reset.
    clock = Clock(datetime(2026, 12, 7, 12, 0, tzinfo=PACIFIC).timestamp())
    with FakeGemini(api_keys=[API_KEY]) as gemini:
        gemini.quotas = Quotas(per_day=PER_DAY, clock=clock)
        deployment = Deployment.with_gemini(
            tmp_path, postgres_url, gemini.base_url, API_KEY, PASSPORT_STEP_RETRY_DELAY_S="0.2"
        )
        halted = deployment.execute_month(MONTH)
        assert halted.returncode != 0
        assert gemini.quotas.rejected_day >= 1
        assert len(_paid(gemini)) == PER_DAY  # the first day: the quota's worth, no more
        [run] = deployment.runs()
        with deployment.instance() as instance:
            halts, _ = quota_facts(instance, MONTH, 0)
            halt = halts[run.run_id]
            assert run.run_id in (instance.get_run_by_id(run.run_id).tags[HALT_TAG])
            # The fake's RetryInfo runs to Google's next midnight (Pacific): the halt keeps it.
            assert halt.resume_at - halt.halted_at == pytest.approx(12 * 3600, abs=5)

            # The sensor's process has the deployment's environment: its launcher passes it on.
            for name, value in deployment.env.items():
                monkeypatch.setenv(name, value)

            def tick(now: float, most: int = 3) -> str:
                sensor = quota_resume_sensor(JOB_NAME, most, launch_detached, clock=lambda: now)
                return sensor(build_sensor_context(instance=instance)).skip_message

            # The halt's alert says when the month goes on by itself.
            alert = build_alert(stopped_month(instance, instance.get_run_by_id(run.run_id), None))
            assert "resumes by itself at" in alert.text and " KST (" in alert.text
            assert "What to do: nothing, the month goes on by itself then" in alert.text
            # With no automatic resume allowed, the sensor says a person is needed instead.
            assert "a person is needed" in tick(halt.resume_at + 1, most=0)
            said = tick(halt.resume_at - 60)
            assert f"{MONTH}: run {run.run_id} halted on the daily quota; resumes by itself" in said
            assert "(automatic resume 1 of 3)" in said
            assert quota_facts(instance, MONTH, 0)[1] == {}  # nothing resumed before the reset

            clock.now = datetime(2026, 12, 8, 0, 0, 1, tzinfo=PACIFIC).timestamp()
            # Google's day has turned (the per-day quota is back) and the sensor's "now" is past
            # the halt's resume time.
            now = halt.resume_at + 1
            said = tick(now)
            assert "resuming now" in said
            child = wait_for(
                lambda: _finished_child(instance, run.run_id), "the resumed run to end", 120
            )
            assert child.status is DagsterRunStatus.SUCCESS
            assert set(quota_facts(instance, MONTH, 0)[1][MONTH]) == {run.run_id}
            # The month is done: a later tick launches nothing.
            assert tick(now + 3600) == "no month is halted on the daily quota"
            tag = instance.get_run_by_id(child.run_id).tags[PROGRESS_TAG]
        paid = _paid(gemini)
        progress = deployment.progress(MONTH)
    # Every user covered, each paid for exactly once, across the two quota days.
    assert all(cover_urls(postgres_url).values()) and len(cover_urls(postgres_url)) == USERS
    assert sorted(sum(f"Trip {i}" in prompt for prompt in paid) for i in range(1, 7)) == [1] * 6
    assert progress["completed"] == USERS and progress["remaining"] == 0
    # Where progress is read, the pace and the run's width show too.
    assert re.fullmatch(r"pace \d+/min, width \d+", progress["pacing"])
    assert re.search(r"; pace \d+/min, width \d+$", tag)


def _finished_child(instance, parent_run_id: str):
    runs = instance.get_runs(RunsFilter(tags={PARENT_RUN_ID_TAG: parent_run_id}))
    finished = [r for r in runs if r.is_finished]
    return finished[0] if finished else None


def _paid(gemini: FakeGemini) -> list[str]:
    """The prompts of the generate requests the fake answered (a quota's 429 is not paid)."""
    return [
        r.prompt
        for r in gemini.records
        if r.endpoint == "generate" and not (r.rule or "").startswith("quota")
    ]
