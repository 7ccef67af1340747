"""Re-execute → From failure right after a run's process was killed covers every user.

When a run's process dies, Dagster (its code server, run monitoring) or our release command marks
the run failed at once; no sensor has run yet. The re-execution the UI plans at that moment
from the run's event log must include every user whose step never started: they must be recorded
before the run's failure is. Paid calls are counted at the Gemini fake.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
from dagster import DagsterEventType, DagsterRunStatus

from passport_pipeline.covers.names import user_step_key
from passport_pipeline_tests.support.dataset import UserRow, cover_urls, october
from passport_pipeline_tests.support.deployment import kill_with_children
from passport_pipeline_tests.support.fake_gemini import FakeGemini
from passport_pipeline_tests.support.gemini_deployment import (
    gemini_deployment,
    gemini_fake,
)
from passport_pipeline_tests.support.waiting import wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]
USERS = [UserRow(i, title=f"Trip {i:03d}", visits=[(1 + i % 5, october(9))]) for i in range(1, 9)]


@pytest.fixture
def gemini() -> Iterator[FakeGemini]:
    yield from gemini_fake()


def covered(postgres_url: str) -> set[int]:
    return {user for user, url in cover_urls(postgres_url).items() if url}


def test_from_failure_planned_the_moment_a_killed_run_shows_failed_covers_everyone(
    tmp_path, postgres_url, gemini
):
    deployment = gemini_deployment(tmp_path, postgres_url, USERS, gemini)
    deployment.set_pool_limit(1)
    gemini.latency_s = 0.5
    cli = deployment.start(*deployment.month_command("2026-10"))
    wait_for(lambda: len(covered(postgres_url)) >= 2, "the run's first covers", 180, 0.05, cli)
    kill_with_children(cli)
    [killed] = deployment.runs()
    assert killed.status is DagsterRunStatus.STARTED

    # The operator's command (no daemon): the run is marked failed and its slots freed.
    released = deployment.run(sys.executable, "-m", "passport_pipeline.cli.release", killed.run_id)
    assert released.returncode == 0, released.stdout + released.stderr
    not_covered = {user.id for user in USERS} - covered(postgres_url)
    assert len(not_covered) >= 4
    with deployment.instance() as instance:
        assert instance.get_run_by_id(killed.run_id).status is DagsterRunStatus.FAILURE
        # What the UI's "Re-execute → From failure" plans from, as it is the moment the run
        # shows failed (no sensor has run): every user not covered either started (Dagster
        # retries an interrupted step) or is recorded as never started, before the run failure.
        ends = instance.all_logs(
            killed.run_id, of_type={DagsterEventType.STEP_FAILURE, DagsterEventType.RUN_FAILURE}
        )  # in the order they were stored
        [run_failure] = [
            i for i, e in enumerate(ends) if e.dagster_event_type is DagsterEventType.RUN_FAILURE
        ]
        started = {
            entry.step_key
            for entry in instance.all_logs(killed.run_id, of_type=DagsterEventType.STEP_START)
        }
        never_started = {
            entry.step_key
            for entry in ends[:run_failure]
            if "step started" in entry.dagster_event.step_failure_data.error.message
        }
    assert never_started
    assert {user_step_key(f"user_{user}") for user in not_covered} <= started | never_started

    paid_before = gemini.generate_requests
    gemini.latency_s = 0
    again = deployment.reexecute(killed.run_id)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert covered(postgres_url) == {user.id for user in USERS}
    # Only the users without a cover are paid for (the one cut off in flight had not been stored).
    assert gemini.generate_requests - paid_before == len(not_covered)
    progress = deployment.progress("2026-10")
    assert (progress["status"], progress["completed"], progress["remaining"]) == (
        "success",
        len(USERS),
        0,
    )
