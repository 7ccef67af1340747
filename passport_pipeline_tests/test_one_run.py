"""One run of a month at a time, from entry points that skip the run queue: `dagster job
execute` twice at once, a second launch while the first runs, two re-executions of one run at
once. Paid calls are counted at the Gemini fake, never in our logs.

(Queued launches — the asset page, the job page, GraphQL, backfills — are held by the run
queue's per-month limit: ``test_backend_api.py``.)
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from dagster import DagsterRunStatus

from passport_pipeline.covers.names import REFUSED_TAG
from passport_pipeline_tests.support.dataset import UserRow, cover_urls, october
from passport_pipeline_tests.support.deployment import Deployment
from passport_pipeline_tests.support.fake_gemini import FakeGemini, Reply
from passport_pipeline_tests.support.gemini_deployment import (
    gemini_deployment,
    gemini_fake,
)
from passport_pipeline_tests.support.waiting import wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]
USERS = [UserRow(i, title=f"Trip {i:03d}", visits=[(1 + i % 5, october(9))]) for i in range(1, 11)]


@pytest.fixture
def gemini() -> Iterator[FakeGemini]:
    yield from gemini_fake()


@pytest.fixture
def deployment(tmp_path, postgres_url, gemini) -> Deployment:
    return gemini_deployment(tmp_path, postgres_url, USERS, gemini)


def covered(postgres_url: str) -> int:
    return sum(1 for url in cover_urls(postgres_url).values() if url)


def assert_one_ran_one_refused(deployment: Deployment, outputs: list[str]) -> None:
    runs = deployment.runs()
    assert len(runs) == 2, [run.status for run in runs]
    winner = [run for run in runs if REFUSED_TAG not in run.tags]
    refused = [run for run in runs if REFUSED_TAG in run.tags]
    assert len(winner) == len(refused) == 1, [run.tags for run in runs]
    assert winner[0].status is DagsterRunStatus.SUCCESS
    assert refused[0].status is DagsterRunStatus.FAILURE
    # The refused launch is told why, naming the run it stood aside for.
    told = f"refused: run {winner[0].run_id} of 2026-10 was launched before this run"
    assert any(told in output for output in outputs), [o[-2000:] for o in outputs]


def one_ends_while_answers_are_held(gemini: FakeGemini, processes: list) -> list[str]:
    """The launches were made while the fake holds its answers, so neither could finish before
    the other had decided; once one has ended (refused), the answers go. Their outputs."""
    try:
        wait_for(
            lambda: any(process.poll() is not None for process in processes),
            "one of the two launches to end",
            300,
        )
    finally:
        gemini.release_answers()
    return [process.communicate(timeout=300)[0] for process in processes]


def test_two_cli_launches_at_once_pay_each_user_once(deployment, gemini, postgres_url):
    with deployment.instance():  # two processes creating a fresh sqlite storage collide
        pass
    gemini.hold_answers()
    first = deployment.start(*deployment.month_command("2026-10"))
    second = deployment.start(*deployment.month_command("2026-10"))
    outputs = one_ends_while_answers_are_held(gemini, [first, second])

    assert sorted(p.returncode != 0 for p in (first, second)) == [False, True], outputs
    assert_one_ran_one_refused(deployment, outputs)
    assert covered(postgres_url) == len(USERS)
    assert gemini.generate_requests == len(USERS)
    for user in USERS:
        assert gemini.requests_for(user.title) == 1


def test_a_launch_while_the_month_runs_is_refused_naming_the_running_run(
    deployment, gemini, postgres_url
):
    gemini.hold_answers()  # the first run is under way until the second launch has ended
    first = deployment.start(*deployment.month_command("2026-10"))
    try:
        # The first run is paying: it is STARTED.
        wait_for(lambda: gemini.generate_requests > 0, "the first run's first call", alive=first)
        second = deployment.execute_month("2026-10")
    finally:
        gemini.release_answers()
    assert second.returncode != 0
    output, _ = first.communicate(timeout=300)
    assert first.returncode == 0, output[-3000:]

    assert_one_ran_one_refused(deployment, [second.stdout + second.stderr])
    assert covered(postgres_url) == len(USERS)
    assert gemini.generate_requests == len(USERS)
    # The month's progress is the run that did the work, not the refused one.
    progress = deployment.progress("2026-10")
    assert (progress["status"], progress["completed"], progress["remaining"]) == (
        "success",
        len(USERS),
        0,
    )


def test_two_reexecutions_of_one_run_at_once_pay_each_user_once(deployment, gemini, postgres_url):
    # The month fails for three users (the model answers garbage); the others are covered.
    failing = USERS[:3]
    for user in failing:
        gemini.script([Reply.corrupt_image()], prompt_contains=user.title)
    first = deployment.execute_month("2026-10")
    assert first.returncode != 0
    assert covered(postgres_url) == len(USERS) - len(failing)
    [failed_run] = deployment.runs()
    gemini.clear_rules()
    paid_before = gemini.generate_requests

    gemini.hold_answers()
    one = deployment.start(*deployment.reexecute_command(failed_run.run_id))
    two = deployment.start(*deployment.reexecute_command(failed_run.run_id))
    outputs = one_ends_while_answers_are_held(gemini, [one, two])

    assert sorted(p.returncode != 0 for p in (one, two)) == [False, True], outputs
    assert covered(postgres_url) == len(USERS)
    assert gemini.generate_requests - paid_before == len(failing)
    reexecutions = [run for run in deployment.runs() if run.run_id != failed_run.run_id]
    assert sorted(REFUSED_TAG in run.tags for run in reexecutions) == [False, True]
    progress = deployment.progress("2026-10")
    assert (progress["status"], progress["completed"], progress["remaining"]) == (
        "success",
        len(USERS),
        0,
    )
