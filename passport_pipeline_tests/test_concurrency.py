"""The pool `gemini` holds the limit across runs, changes live, and survives interruptions.

Counted where it matters: requests in flight at the (local) Gemini server. The instance is the
production one, deploy/dagster.yaml on PostgreSQL: stock dagster-postgres can hand one slot to
two steps (see passport_pipeline/execution/instance_storage.py).
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from dagster import DagsterRunStatus

from passport_pipeline_tests.support.dataset import UserRow, cover_urls, october
from passport_pipeline_tests.support.deployment import Deployment
from passport_pipeline_tests.support.fake_gemini import FakeGemini
from passport_pipeline_tests.support.gemini_deployment import (
    GEMINI_TEST_KEY,
    gemini_deployment,
    gemini_fake,
)
from passport_pipeline_tests.support.waiting import wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]


def two_months_of_users(per_month: int) -> list[UserRow]:
    september = [
        UserRow(100 + i, visits=[(1, datetime(2026, 9, 10, 3, tzinfo=UTC))])
        for i in range(per_month)
    ]
    return [UserRow(i, visits=[(2, october(10))]) for i in range(1, per_month + 1)] + september


@pytest.fixture
def gemini() -> Iterator[FakeGemini]:
    yield from gemini_fake(latency_s=1.0)


@pytest.fixture
def deployment(tmp_path, postgres_url, instance_url, gemini) -> Deployment:
    # The pool is under test: runs start at its full width (the pace's slow start is
    # resources/test_pacing.py's and test_breaker.py's).
    users = two_months_of_users(6)
    return gemini_deployment(
        tmp_path, postgres_url, users, gemini, instance_url, GEMINI_START_WIDTH="50"
    )


def test_two_runs_at_once_never_exceed_the_pool(deployment, gemini, postgres_url):
    deployment.set_pool_limit(3)
    october_run = deployment.start(*deployment.month_command("2026-10"))
    september_run = deployment.start(*deployment.month_command("2026-09"))
    for process in (october_run, september_run):
        output, _ = process.communicate(timeout=300)
        assert process.returncode == 0, output[-3000:]
    assert gemini.generate_requests == 12
    assert gemini.max_in_flight == 3
    assert all(cover_urls(postgres_url).values())


def test_a_new_pool_limit_applies_to_the_next_run_without_a_deploy(deployment, gemini):
    # The fake holds its answers until the pool's width is in flight (10 s at most), so the
    # width is reached however slowly a loaded machine starts the steps.
    gemini.answer_when_in_flight = 2
    deployment.set_pool_limit(2, from_the_shell=True)
    assert deployment.execute_month("2026-10").returncode == 0
    assert gemini.max_in_flight == 2
    # The run's own record of it, from its step start and end events.
    assert deployment.progress("2026-10")["max_in_flight"] == 2
    gemini.reset()
    gemini.answer_when_in_flight = 5
    deployment.set_pool_limit(5)  # (the command's own start proven above)
    assert deployment.execute_month("2026-09").returncode == 0
    assert gemini.max_in_flight == 5


def test_an_interrupted_run_gives_its_slots_back(deployment, gemini, postgres_url):
    deployment.set_pool_limit(2)
    gemini.latency_s = 120  # the first run's calls hang until the run is interrupted
    # A step thread cannot be killed: it ends when its model call does, bounded by the
    # per-attempt deadline (a step process is interrupted at once).
    deployment.env.update(GEMINI_READ_TIMEOUT_S="10", GEMINI_REQUEST_DEADLINE_S="10")
    stuck = deployment.start(*deployment.month_command("2026-10"))
    wait_for(lambda: gemini.in_flight >= 2, "the first run at the pool's width", 120, alive=stuck)
    paid = gemini.generate_requests
    stuck.send_signal(signal.SIGINT)  # Ctrl-C in the operator's shell
    stuck.communicate(timeout=120)
    [interrupted] = deployment.runs()
    assert interrupted.status in (DagsterRunStatus.CANCELED, DagsterRunStatus.FAILURE)
    assert gemini.generate_requests == paid  # no paid call, not even a retry, after the stop

    with FakeGemini(api_keys=[GEMINI_TEST_KEY], latency_s=1.0) as fresh:
        deployment.env["GEMINI_BASE_URL"] = fresh.base_url
        completed = deployment.execute_month("2026-09")
        assert completed.returncode == 0, completed.stdout[-3000:]
        assert fresh.max_in_flight == 2  # the full width: no slot is still held
    september = {u: url for u, url in cover_urls(postgres_url).items() if u >= 100}
    assert all(september.values())
