"""Re-execute → From failure from the UI finishes a month after a killed daemon and after a
failed backfill, paying only for the users without a cover.

On the production instance (deploy/dagster.yaml on PostgreSQL) with ``dagster-webserver`` and
``dagster-daemon``, every launch and re-execution sent over GraphQL as the UI's buttons send it
(support/ui_graphql.py), and paid calls counted at the Gemini fake:

- a month launched from the job page (queued, started by the daemon's run queue) whose daemon is
  killed with everything under it, run process included, mid-month: the restarted daemon fails
  the run by itself (the ``…_dead_runs`` sensor), the users whose step never started are in the
  run's event log before its failure is (instance.py), so Re-execute → From failure clicked the
  moment the run shows failed already plans every user without a cover (clicked while it still
  shows STARTED it is refused, launching nothing); the failure sensor records the stopped month
  too;
- a job-page backfill of a month (the UI's form for our job: a job backfill over the job's
  partition set) whose run process, started by the daemon, is killed with two calls in flight
  and users never started — then the backfill page's Re-execute → From failure. Dagster 1.13
  (``retry_partition_backfill``, ``job_backfill.create_backfill_run``) makes a new job backfill
  with ``from_failure`` whose run re-executes the month's last run from failure: only the users
  without a cover run, each paid once more. (deploy/dagster.yaml enables no run retries.)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import pytest
from dagster import AssetKey, DagsterEventType, DagsterRun, DagsterRunStatus

from passport_pipeline.covers.names import JOB_NAME, user_step_key
from passport_pipeline.covers.unstarted_steps import NEVER_STARTED
from passport_pipeline.execution.run_process import ProcessIdentity
from passport_pipeline_tests.support.dataset import UserRow, cover_urls, october
from passport_pipeline_tests.support.deployment import (
    Deployment,
    kill_pid_with_children,
    kill_with_children,
)
from passport_pipeline_tests.support.fake_gemini import FakeGemini
from passport_pipeline_tests.support.gemini_deployment import gemini_deployment, gemini_fake
from passport_pipeline_tests.support.ui_graphql import (
    backfill_from_job_page,
    launch_month,
    reexecute_backfill_from_failure,
    reexecute_from_failure,
    reexecute_from_failure_answer,
)
from passport_pipeline_tests.support.waiting import sensor_started, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]
MONTH = "2026-10"
USERS = [UserRow(i, title=f"Trip {i:03d}", visits=[(1 + i % 5, october(9))]) for i in range(1, 9)]
POOL = 2
TIMEOUT_S = 240  # a bound on a wait that went wrong, not a speed check
ENDED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}


@pytest.fixture
def gemini() -> Iterator[FakeGemini]:
    yield from gemini_fake()


@pytest.fixture
def deployment(tmp_path, postgres_url, instance_url, gemini) -> Deployment:
    # The daemon's sensors (dead runs, failures) look every 5 s instead of 30.
    deployment = gemini_deployment(
        tmp_path, postgres_url, USERS, gemini, instance_url, PASSPORT_WATCH_INTERVAL_S="5"
    )
    deployment.set_pool_limit(POOL)
    return deployment


def covered(postgres_url: str) -> set[int]:
    return {user for user, url in cover_urls(postgres_url).items() if url}


def run_status(deployment: Deployment, run_id: str) -> DagsterRunStatus:
    with deployment.instance() as instance:
        return instance.get_run_by_id(run_id).status


def month_done(deployment: Deployment) -> None:
    progress = deployment.progress(MONTH)
    assert (progress["status"], progress["completed"], progress["remaining"]) == (
        "success",
        len(USERS),
        0,
    )


def test_a_killed_daemon_restarted_fails_the_run_and_from_failure_at_once_covers_everyone(
    deployment, gemini, postgres_url
):
    failures_sensor = f"{JOB_NAME}_failures"
    with ExitStack() as stack:
        daemon = stack.enter_context(deployment.daemon())
        port = stack.enter_context(deployment.webserver(with_daemon=False))
        # A run-status sensor sees only runs that stop after its first tick.
        wait_for(lambda: sensor_started(deployment, failures_sensor), "the sensors' first tick")
        gemini.latency_s = 1.0  # 2 at a time: the month takes about 4 s
        run_id = launch_month(port, MONTH)
        # Killed with two users covered and two calls in flight (paid, their answers lost).
        wait_for(
            lambda: gemini.in_flight == POOL and len(covered(postgres_url)) >= 2,
            "the first covers and two calls in flight",
            TIMEOUT_S,
            every_s=0.05,
        )
        kill_with_children(daemon)  # the daemon, its code server and the run process under it
        assert run_status(deployment, run_id) is DagsterRunStatus.STARTED
        covered_before = covered(postgres_url)
        not_covered = {user.id for user in USERS} - covered_before
        assert len(not_covered) > POOL  # some users never started
        paid_before = {user.id: gemini.requests_for(user.title) for user in USERS}
        # Clicked while nothing knows the run is dead (it shows STARTED): refused, nothing runs.
        early = reexecute_from_failure_answer(port, run_id)
        refused = (early.get("data") or {}).get("launchRunReexecution") or {}
        assert refused.get("__typename") == "PythonError", early
        assert "Cannot reexecute from failure a run that is not failed" in refused["message"]
        assert len(deployment.runs()) == 1

        # The failure sensor of the restarted daemon recorded the stopped run on its month.
        def failure_recorded() -> bool:
            with deployment.instance() as instance:
                records = instance.fetch_observations(AssetKey(["passport_covers"]), 50).records
            return any(
                (metadata := r.asset_observation.metadata).get("run_id")
                and metadata["run_id"].value == run_id
                and metadata["run_status"].value == "failed"
                for r in records
            )

        # No command: the restarted daemon finds the dead run and fails it.
        stack.enter_context(deployment.daemon("daemon-restarted"))
        wait_for(
            lambda: run_status(deployment, run_id) is DagsterRunStatus.FAILURE,
            "the restarted daemon to fail the run",
            TIMEOUT_S,
            every_s=0.05,
        )
        # Re-execute → From failure, clicked the moment the run shows failed.
        gemini.latency_s = 0.5
        again = reexecute_from_failure(port, run_id)
        with deployment.instance() as instance:
            planned = set(instance.get_run_by_id(again).step_keys_to_execute)
            never_started = {
                entry.step_key
                for entry in instance.all_logs(run_id, of_type=DagsterEventType.STEP_FAILURE)
                if entry.dagster_event.step_failure_data.error.message.startswith(NEVER_STARTED)
            }
        assert {user_step_key(f"user_{user}") for user in not_covered} <= planned
        assert len(never_started) >= len(not_covered) - POOL  # at most 2 were in flight
        wait_for(lambda: run_status(deployment, again) in ENDED, "the re-execution", TIMEOUT_S)
        assert run_status(deployment, again) is DagsterRunStatus.SUCCESS

        wait_for(failure_recorded, "the failure sensor's record of the month", TIMEOUT_S)

    assert covered(postgres_url) == {user.id for user in USERS}
    for user in USERS:  # one more paid call for each user without a cover, none for the others
        extra = gemini.requests_for(user.title) - paid_before[user.id]
        assert extra == (user.id in not_covered), (user.id, extra)
    month_done(deployment)


def test_a_backfill_whose_run_was_killed_is_reexecuted_from_failure_paying_the_uncovered_once(
    deployment, gemini, postgres_url
):
    gemini.latency_s = 1.0  # 2 at a time: the month takes about 4 s
    with ExitStack() as stack:
        port = stack.enter_context(deployment.webserver(with_daemon=False))
        backfill = backfill_from_job_page(port, [MONTH])
        # The backfill daemon looks every 30 s (Dagster's fixed loop), first when it starts: it
        # starts now and submits the backfill's run at once.
        stack.enter_context(deployment.daemon())
        # Killed with two users covered and two calls in flight (paid, answers lost).
        wait_for(
            lambda: gemini.in_flight == POOL and len(covered(postgres_url)) >= 2,
            "the first covers and two calls in flight",
            TIMEOUT_S,
            every_s=0.05,
        )
        [run] = deployment.runs()
        kill_pid_with_children(ProcessIdentity.of_run(run).pid)

        def backfill_status(backfill_id: str) -> str:
            with deployment.instance() as instance:
                return instance.get_backfill(backfill_id).status.value

        # It marks the backfill completed at its first look after the run has ended.
        wait_for(lambda: backfill_status(backfill) != "REQUESTED", "the backfill to end", TIMEOUT_S)
        assert backfill_status(backfill) == "COMPLETED_FAILED"
        [failed] = deployment.runs()
        assert failed.status is DagsterRunStatus.FAILURE
        assert failed.tags["dagster/backfill"] == backfill
        not_covered = {user.id for user in USERS} - covered(postgres_url)
        assert len(not_covered) > POOL  # some users never started
        paid_before = {user.id: gemini.requests_for(user.title) for user in USERS}

        gemini.latency_s = 0.5
        retry = reexecute_backfill_from_failure(port, backfill)

        def retry_run() -> DagsterRun | None:
            runs = [run for run in deployment.runs() if run.run_id != failed.run_id]
            return runs[0] if runs and runs[0].status in ENDED else None

        # (Not waiting for the retry's own COMPLETED_SUCCESS: one more 30 s daemon loop.)
        reexecution = wait_for(retry_run, "the backfill retry's run", TIMEOUT_S)

    # One run: the failed run re-executed from failure, in the retry backfill.
    assert len(deployment.runs()) == 2
    assert reexecution.parent_run_id == failed.run_id
    assert reexecution.tags["dagster/backfill"] == retry
    assert reexecution.status is DagsterRunStatus.SUCCESS
    assert set(reexecution.step_keys_to_execute) == {
        *(user_step_key(f"user_{user}") for user in not_covered),
        "passport_covers.record_month",
    }
    assert covered(postgres_url) == {user.id for user in USERS}
    for user in USERS:  # one more paid call for each user without a cover, none for the others
        extra = gemini.requests_for(user.title) - paid_before[user.id]
        assert extra == (user.id in not_covered), (user.id, extra)
    month_done(deployment)
