"""A month through Gemini's Batch API end to end, as operators run it: ``dagster job execute``
submits the batch, ``dagster-daemon`` (stopped and started again while the batch is pending)
polls it and launches the results run; PostgreSQL app database, the fake Gemini over HTTP."""

from __future__ import annotations

import sys
import threading

import pytest
from dagster import DagsterEventType, DagsterRunStatus

from passport_pipeline.covers.batch_ledger import BATCH_TAG, month_batches
from passport_pipeline.covers.names import JOB_NAME
from passport_pipeline_tests.support.dataset import UserRow, cover_urls, october, write_dataset
from passport_pipeline_tests.support.deployment import Deployment
from passport_pipeline_tests.support.fake_gemini import FakeGemini, Reply
from passport_pipeline_tests.support.waiting import sensor_ticks, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]

MONTH = "2026-10"
USERS = [
    UserRow(1, visits=[(1, october(3))]),
    UserRow(2, visits=[(3, october(5))]),  # Haeundae Beach: the batch refuses this request
    UserRow(3, visits=[(4, october(6))]),
]
FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}


@pytest.fixture
def gemini():
    with FakeGemini() as server:
        yield server


@pytest.fixture
def deployment(tmp_path, postgres_url, gemini) -> Deployment:
    write_dataset(postgres_url, USERS)
    return Deployment.create(
        tmp_path,
        PASSPORT_DATABASE_URL=postgres_url,
        PASSPORT_IMAGE_MODEL="gemini-batch",
        GEMINI_BASE_URL=gemini.base_url,
        GEMINI_API_KEY="test-key",
        PASSPORT_BATCH_POLL_INTERVAL_S="1",
        PASSPORT_STEP_RETRY_DELAY_S="0.2",
    )


def ticks(deployment: Deployment) -> int:
    with deployment.instance() as instance:
        return sensor_ticks(instance, f"{JOB_NAME}_batches")


def ledger_state(deployment: Deployment, name: str) -> str | None:
    with deployment.instance() as instance:
        record = month_batches(instance, MONTH).get(name)
    return record.state if record else None


def test_a_month_through_a_batch_survives_a_daemon_restart_and_names_the_refused_user(
    deployment, gemini, postgres_url
):
    gemini.script([Reply.error(400)], endpoint="batch", prompt_contains="Haeundae")
    submit = deployment.execute_month(MONTH)
    assert submit.returncode == 0, submit.stdout + submit.stderr
    [name] = gemini.batches.names()
    again = deployment.execute_month(MONTH)  # a second launch while the batch is pending
    assert again.returncode == 0 and gemini.batches.calls["create"] == 1

    with deployment.daemon("daemon-1"):
        wait_for(lambda: gemini.batches.calls["get"] >= 1, "the sensor's first poll", 300)
        gemini.batches.run(name, answered=1)
        wait_for(lambda: ledger_state(deployment, name) == "RUNNING", "RUNNING in the ledger", 300)
    # The daemon is down when the batch finishes; the new daemon finds it from its cursor.
    gemini.batches.finish(name)
    with deployment.daemon("daemon-2"):
        results = wait_for(
            lambda: [
                run
                for run in deployment.runs()
                if run.tags.get(BATCH_TAG) == name and run.status in FINISHED
            ],
            "the results run",
            timeout_s=300,
            every_s=0.5,
        )
        # Two more of the sensor's ticks, each of which sees the finished batch: none may
        # launch a second results run.
        seen = ticks(deployment)
        wait_for(lambda: ticks(deployment) >= seen + 2, "two more sensor ticks", timeout_s=120)
        launched = [run for run in deployment.runs() if run.tags.get(BATCH_TAG) == name]

    [run] = results
    assert len(launched) == 1 and run.status is DagsterRunStatus.FAILURE
    failed = deployment.step_keys(run.run_id, DagsterEventType.STEP_FAILURE)
    assert failed == ["passport_covers.generate_cover[user_2]"]
    urls = cover_urls(postgres_url)
    assert urls[1] and urls[3] and urls[2] is None
    assert gemini.generate_requests == 0  # no direct, full-price call
    assert gemini.batches.paid_images() == {"batch": 2}
    assert ledger_state(deployment, name) == "SUCCEEDED"
    with deployment.instance() as instance:
        assert month_batches(instance, MONTH)[name].closed
    progress = deployment.progress(MONTH)
    assert progress["failed"] == 1 and progress["completed"] == 2


def test_an_operator_sees_and_cancels_a_pending_batch_from_the_shell(deployment, gemini):
    assert deployment.execute_month(MONTH).returncode == 0
    [name] = gemini.batches.names()
    # The submitting run has ended; progress says the month still waits on its batch.
    assert deployment.progress(MONTH)["batches"] == {name: "PENDING: 0 of 3 answered (3 pending)"}
    command = [sys.executable, "-m", "passport_pipeline.cli.batches", "--partition", MONTH]
    listed = deployment.run(*command)
    assert listed.returncode == 0, listed.stderr
    assert f"{name}: PENDING" in listed.stdout and "(3 users)" in listed.stdout
    cancelled = deployment.run(*command, "--cancel")
    assert cancelled.returncode == 0, cancelled.stderr
    assert f"cancelled: {name}" in cancelled.stdout
    assert gemini.batches.calls["cancel"] == 1
    assert ledger_state(deployment, name) == "CANCELLED"
    # Until the sensor's results run takes it, the month names the cancelled batch.
    assert deployment.progress(MONTH)["batches"][name].startswith("CANCELLED")


def test_a_run_killed_between_creating_its_batch_and_recording_it_pays_once(deployment, gemini):
    # kill -9 of `dagster job execute` while Gemini holds its answer to the create: the batch
    # exists at Gemini, the run never heard of it. The next launch adopts it.
    hold = threading.Event()
    hold.set()
    gemini.batches.hold_create_answer = hold
    killed = deployment.start(*deployment.month_command(MONTH))
    try:
        assert gemini.batches.created.wait(240), "the create never reached Gemini"
    finally:
        killed.kill()
        killed.wait(timeout=60)
        hold.clear()
    [name] = gemini.batches.names()
    with deployment.instance() as instance:
        [dead] = instance.get_runs()
        assert month_batches(instance, MONTH) == {}  # nothing recorded but the intent
        instance.report_run_failed(dead)  # as run monitoring does for a dead run process

    again = deployment.execute_month(MONTH)
    assert again.returncode == 0, again.stdout + again.stderr
    assert gemini.batches.names() == [name] and gemini.batches.calls["create"] == 1
    with deployment.instance() as instance:
        assert month_batches(instance, MONTH)[name].user_ids == [1, 2, 3]
    gemini.batches.finish(name)
    results = deployment.execute_month(MONTH)  # the finished batch's results run
    assert results.returncode == 0, results.stdout + results.stderr
    assert gemini.batches.paid_images() == {"batch": 3} and gemini.generate_requests == 0
    assert deployment.progress(MONTH)["completed"] == 3
