"""Whole-job runs as operators run them: `dagster job execute` on the multiprocess executor,
the PostgreSQL app database, and the production Gemini client talking HTTP to a local server
that answers with Gemini's documented JSON."""

from __future__ import annotations

import pytest
from dagster import DagsterEventType

from passport_pipeline_tests.dataset import UserRow, cover_urls, october, write_dataset
from passport_pipeline_tests.deployment import Deployment
from passport_pipeline_tests.servers.fake_gemini import FakeGemini, Reply

API_KEY = "AIzaTEST-passport-key-0001112223334445"
BLOCKED = {3, 8, 15}
USERS = [
    UserRow(
        user_id,
        title="Blocked trip" if user_id in BLOCKED else f"Trip number {user_id}",
        visits=[(1 + user_id % 5, october(1 + user_id % 27)), (1 + (user_id + 2) % 5, october(28))],
    )
    for user_id in range(1, 21)
]
COVER_STEPS = sorted(f"generate_cover[user_{u.id}]" for u in USERS)


@pytest.fixture
def gemini() -> FakeGemini:
    with FakeGemini(api_keys=[API_KEY]) as server:
        yield server


@pytest.fixture
def deployment(tmp_path, postgres_url, gemini) -> Deployment:
    write_dataset(postgres_url, USERS)
    return Deployment.create(
        tmp_path,
        PASSPORT_DATABASE_URL=postgres_url,
        PASSPORT_IMAGE_MODEL="gemini",
        GEMINI_BASE_URL=gemini.base_url,
        GEMINI_API_KEY=API_KEY,
    )


def test_month_run_with_gemini_links_every_passport(deployment, gemini, postgres_url):
    completed = deployment.execute_month("2026-10")
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    urls = cover_urls(postgres_url)
    assert all(urls[u.id] for u in USERS)
    assert gemini.generate_requests == 20
    progress = deployment.progress("2026-10")
    assert {k: progress[k] for k in ("total", "completed", "failed", "skipped", "remaining")} == {
        "total": 20,
        "completed": 20,
        "failed": 0,
        "skipped": 0,
        "remaining": 0,
    }
    assert progress["percent"] == 100.0
    assert progress["summary"]["generated"] == 20


def test_failures_do_not_hold_back_the_rest_and_reexecution_finishes_the_month(
    deployment, gemini, postgres_url
):
    gemini.script([Reply.no_image("IMAGE_SAFETY")], prompt_contains="Blocked")
    first = deployment.execute_month("2026-10")
    assert first.returncode != 0
    [run] = deployment.runs()
    # The 17 others are linked in that same run; the 3 refused users are failed steps.
    urls = cover_urls(postgres_url)
    assert {u for u, url in urls.items() if url} == {u.id for u in USERS} - BLOCKED
    failed = deployment.step_keys(run.run_id, DagsterEventType.STEP_FAILURE)
    assert failed == sorted(f"generate_cover[user_{u}]" for u in BLOCKED)
    assert deployment.step_keys(run.run_id, DagsterEventType.STEP_UP_FOR_RETRY) == []
    assert gemini.generate_requests == 20  # refused content is not retried
    progress = deployment.progress("2026-10")
    assert (progress["completed"], progress["failed"], progress["remaining"]) == (17, 3, 0)

    # The safety filter is satisfied now (say, the prompt template was fixed): re-execute.
    gemini.clear_rules()
    gemini.reset()
    again = deployment.reexecute(run.run_id)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    _, reexecution = deployment.runs()
    assert reexecution.parent_run_id == run.run_id
    assert deployment.step_keys(reexecution.run_id, DagsterEventType.STEP_START) == sorted(
        [f"generate_cover[user_{u}]" for u in BLOCKED] + ["record_month"]
    )
    assert gemini.generate_requests == 3
    assert all(cover_urls(postgres_url).values())
    progress = deployment.progress("2026-10")
    assert (progress["completed"], progress["failed"], progress["percent"]) == (20, 0, 100.0)
    assert progress["summary"]["total"] == 20

    # Nothing paid twice: a new run of the month reuses all 20 stored covers.
    gemini.reset()
    assert deployment.execute_month("2026-10").returncode == 0
    assert gemini.generate_requests == 0
    assert deployment.progress("2026-10")["summary"]["reused"] == 20


def test_a_bad_key_stops_the_run_before_any_paid_call(deployment, gemini):
    deployment.env["GEMINI_API_KEY"] = "AIzaWRONG-key-99999999999"
    completed = deployment.execute_month("2026-10")
    assert completed.returncode != 0
    assert "Gemini rejected the API key" in completed.stdout + completed.stderr
    assert gemini.generate_requests == 0
    [run] = deployment.runs()
    assert deployment.step_keys(run.run_id, DagsterEventType.STEP_START) == ["month_users"]
    assert deployment.files_containing("AIzaWRONG-key-99999999999") == []


def test_a_key_revoked_mid_run_halts_the_remaining_users(deployment, gemini):
    deployment.env["PASSPORT_MAX_CONCURRENT_STEPS"] = "2"
    # The free model lookup still passes; every paid call is refused as for a revoked key.
    gemini.script(
        [
            Reply.error(
                400,
                "API key expired. Please renew the API key.",
                [
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "API_KEY_INVALID",
                        "domain": "googleapis.com",
                    }
                ],
            )
        ]
    )
    completed = deployment.execute_month("2026-10")
    assert completed.returncode != 0
    [run] = deployment.runs()
    assert deployment.step_keys(run.run_id, DagsterEventType.STEP_FAILURE) == COVER_STEPS
    # Only the steps already in flight when the first refusal came back called the API.
    assert 1 <= gemini.generate_requests <= 2
    with deployment.instance() as instance:
        messages = [
            entry.dagster_event.step_failure_data.error.message
            for entry in instance.all_logs(run.run_id, of_type=DagsterEventType.STEP_FAILURE)
        ]
    assert sum("this run was halted" in m for m in messages) >= 18
    assert all("API_KEY_INVALID" in m for m in messages)
