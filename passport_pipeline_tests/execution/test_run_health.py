"""A killed `dagster job execute` gives its pool slots back: by the daemon, or by one command
that the waiting run names.

The production instance (deploy/dagster.yaml on PostgreSQL), the operators' own commands in
subprocesses, and the paid calls counted at the fake Gemini server.
"""

from __future__ import annotations

import logging

import pytest
from dagster import DagsterEventType, DagsterRunStatus

from passport_pipeline.covers.names import GEMINI_POOL, JOB_NAME
from passport_pipeline.execution.run_health import RELEASE_COMMAND
from passport_pipeline_tests.support.dataset import UserRow, cover_urls, october, write_dataset
from passport_pipeline_tests.support.deployment import BIN, Deployment, kill_with_children
from passport_pipeline_tests.support.fake_gemini import FakeGemini
from passport_pipeline_tests.support.waiting import sensor_started, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]

API_KEY = "AIzaTEST-run-health-key-000000000"
USERS = 6
POOL = 2


@pytest.fixture
def deployment(tmp_path, postgres_url, instance_url) -> Deployment:
    # Each user visited in September and in October: two months that share the pool.
    visits = [(2, october(10)), (3, october(10).replace(month=9))]
    write_dataset(postgres_url, [UserRow(i, visits=visits) for i in range(1, USERS + 1)])
    # Each test points GEMINI_BASE_URL at its own servers.
    # The daemon looks for dead and stopped runs every 5 s here (30 s by default).
    deployment = Deployment.with_gemini(
        tmp_path,
        postgres_url,
        "http://127.0.0.1:9",
        API_KEY,
        instance_url=instance_url,
        PASSPORT_WATCH_INTERVAL_S="5",
    )
    deployment.set_pool_limit(POOL)
    return deployment


def kill_mid_run(deployment: Deployment, gemini: FakeGemini) -> str:
    """Start the month, wait until it holds the whole pool, then kill -9 the CLI and every
    process under it (what closing the operator's terminal or an OOM kill of the group does)."""
    cli = deployment.start(*deployment.month_command("2026-10"))
    wait_for(lambda: gemini.in_flight >= POOL, "the run at the pool's width", 120, alive=cli)
    kill_with_children(cli)
    [killed] = deployment.runs()
    return killed.run_id


def slot_holders(deployment: Deployment) -> set[str]:
    with deployment.instance() as instance:
        info = instance.event_log_storage.get_concurrency_info(GEMINI_POOL)
    return {slot.run_id for slot in info.claimed_slots} | {s.run_id for s in info.pending_steps}


def test_the_daemon_fails_a_killed_run_and_the_next_run_covers_everyone(deployment, postgres_url):
    daemon = deployment.start(
        str(BIN / "dagster-daemon"), "run", "-m", "passport_pipeline.definitions"
    )
    try:
        # A run-status sensor sees only runs that stop after its first tick, which sets its
        # cursor; on a loaded machine the daemon takes a while to load the code and tick.
        wait_for(
            lambda: sensor_started(deployment, f"{JOB_NAME}_failures"),
            "the failure sensor's first tick",
        )
        # The first run's calls never finish: it is killed while it holds the whole pool.
        with FakeGemini(api_keys=[API_KEY], latency_s=300) as hanging:
            deployment.env["GEMINI_BASE_URL"] = hanging.base_url
            killed = kill_mid_run(deployment, hanging)

            # No manual step: the daemon's sensor notices the dead process. (Whether it has
            # already is a race with its 30 s ticks: the failure's message below says it did.)
            def failed():
                with deployment.instance() as instance:
                    run = instance.get_run_by_id(killed)
                    return run.status == DagsterRunStatus.FAILURE

            wait_for(failed, "the killed run to be marked failed")
        assert killed not in slot_holders(deployment)
        with deployment.instance() as instance:
            [failure] = instance.all_logs(killed, of_type=DagsterEventType.RUN_FAILURE)
        assert "is gone" in failure.message and "slots" in failure.message

        # The failure sensor then records the users whose step never started, so that the
        # month's books balance and re-execution from failure would cover them.
        def never_started() -> set[str]:
            with deployment.instance() as instance:
                return {
                    entry.step_key
                    for entry in instance.all_logs(killed, of_type=DagsterEventType.STEP_FAILURE)
                    if "never started" in (entry.dagster_event.message or "")
                }

        # They are written one by one: wait for all of them (a partial set is not the answer).
        wait_for(
            lambda: len(never_started()) >= USERS - POOL, "the never-started users to be recorded"
        )
        assert len(never_started()) == USERS - POOL

        with FakeGemini(api_keys=[API_KEY], latency_s=1.0) as gemini:
            deployment.env["GEMINI_BASE_URL"] = gemini.base_url
            completed = deployment.execute_month("2026-10")
            assert completed.returncode == 0, completed.stdout[-3000:]
            assert gemini.max_in_flight == POOL  # the pool's full width is back
            assert gemini.generate_requests == USERS  # the killed run stored no cover
        assert all(cover_urls(postgres_url).values())
    finally:
        daemon.kill()
        daemon.communicate(timeout=60)


def test_without_a_daemon_the_waiting_run_names_the_dead_run_and_the_command(
    deployment, postgres_url
):
    with FakeGemini(api_keys=[API_KEY], latency_s=300) as hanging:
        deployment.env["GEMINI_BASE_URL"] = hanging.base_url
        killed = kill_mid_run(deployment, hanging)
    # Nothing else knows it died: no daemon runs here. Its slots are still held.
    [run] = deployment.runs()
    assert run.status == DagsterRunStatus.STARTED
    assert killed in slot_holders(deployment)

    command = f"{RELEASE_COMMAND} {killed}"
    with FakeGemini(api_keys=[API_KEY], latency_s=1.0) as gemini:
        deployment.env["GEMINI_BASE_URL"] = gemini.base_url
        # The dead run's own month: refused at once (one run of a month at a time), naming the
        # run it defers to and the command that frees it; nothing paid.
        same_month = deployment.execute_month("2026-10")
        assert same_month.returncode != 0
        told = same_month.stdout + same_month.stderr
        assert f"refused: run {killed} of 2026-10" in told and command in told
        assert gemini.generate_requests == 0
        # Another month waits on the pool slots the dead run holds, and says who holds them.
        waiting = deployment.start(*deployment.month_command("2026-09"))
        try:

            def warning():
                with deployment.instance() as instance:
                    runs = [r for r in instance.get_runs() if r.run_id != killed]
                    return [
                        entry.user_message
                        for run in runs
                        for entry in instance.all_logs(run.run_id)
                        if entry.level == logging.WARNING and command in entry.user_message
                    ]

            [message] = wait_for(warning, "the waiting run to warn")
            assert gemini.generate_requests == 0  # it really was waiting
            assert f"run {killed} is still STARTED, but its process" in message

            released = deployment.run(*command.replace("python", str(BIN / "python"), 1).split())
            assert released.returncode == 0, released.stdout + released.stderr
            output, _ = waiting.communicate(timeout=300)
            assert waiting.returncode == 0, output[-3000:]
        finally:
            if waiting.poll() is None:
                waiting.kill()
        assert gemini.generate_requests == USERS
        assert gemini.max_in_flight == POOL
    assert all(cover_urls(postgres_url).values())
    [dead] = [run for run in deployment.runs() if run.run_id == killed]
    assert dead.status == DagsterRunStatus.FAILURE
