"""Whole-job runs as operators run them: `dagster job execute` on the default executor, the
PostgreSQL app database, and the production Gemini client talking HTTP to a local server that
answers as Google's servers do (gzip, chunked, real-size images)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

import pytest
import requests
from dagster import DagsterEventType

from passport_pipeline.domain.images import inspect_image
from passport_pipeline_tests.support.dataset import UserRow, cover_urls, october, write_dataset
from passport_pipeline_tests.support.deployment import Deployment
from passport_pipeline_tests.support.fake_gemini import FakeGemini, Reply
from passport_pipeline_tests.support.gemini_deployment import (
    GEMINI_TEST_KEY,
    gemini_deployment,
    gemini_fake,
)

# The app database of every test here is on the PostgreSQL server.
pytestmark = [pytest.mark.postgres, pytest.mark.e2e]
BLOCKED = {3, 8, 11}
USERS = [
    UserRow(
        user_id,
        title="Blocked trip" if user_id in BLOCKED else f"Trip number {user_id}",
        visits=[(1 + user_id % 5, october(1 + user_id % 27)), (1 + (user_id + 2) % 5, october(28))],
    )
    for user_id in range(1, 13)
]
COVERED = len(USERS) - len(BLOCKED)  # the users the model draws when it blocks the others
COVER_STEPS = sorted(f"passport_covers.generate_cover[user_{u.id}]" for u in USERS)


@pytest.fixture
def gemini() -> Iterator[FakeGemini]:
    yield from gemini_fake()


@pytest.fixture
def deployment(tmp_path, postgres_url, gemini) -> Deployment:
    return gemini_deployment(tmp_path, postgres_url, USERS, gemini)


def test_month_run_with_gemini_links_every_passport(deployment, gemini, postgres_url):
    completed = deployment.execute_month("2026-10")
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    urls = cover_urls(postgres_url)
    assert all(urls[u.id] for u in USERS)
    assert gemini.generate_requests == len(USERS)
    progress = deployment.progress("2026-10")
    assert {k: progress[k] for k in ("total", "completed", "failed", "skipped", "remaining")} == {
        "total": len(USERS),
        "completed": len(USERS),
        "failed": 0,
        "skipped": 0,
        "remaining": 0,
    }
    assert progress["percent"] == 100.0
    assert progress["summary"]["generated"] == len(USERS)
    # What the operator's command prints is the same report.
    assert deployment.progress_from_the_shell("2026-10") == progress


def test_failures_do_not_hold_back_the_rest_and_reexecution_finishes_the_month(
    deployment, gemini, postgres_url
):
    # The model answers these three users with bytes that are no image: asked again once, then
    # each user's step fails for good (no step retry).
    gemini.script([Reply.corrupt_image()], prompt_contains="Blocked")
    first = deployment.execute_month("2026-10")
    assert first.returncode != 0
    [run] = deployment.runs()
    # The others are linked in that same run; the 3 users are failed steps.
    urls = cover_urls(postgres_url)
    assert {u for u, url in urls.items() if url} == {u.id for u in USERS} - BLOCKED
    failed = deployment.step_keys(run.run_id, DagsterEventType.STEP_FAILURE)
    assert failed == sorted(f"passport_covers.generate_cover[user_{u}]" for u in BLOCKED)
    assert deployment.step_keys(run.run_id, DagsterEventType.STEP_UP_FOR_RETRY) == []
    assert gemini.generate_requests == COVERED + 3 * 2
    progress = deployment.progress("2026-10")
    assert (progress["completed"], progress["failed"], progress["remaining"]) == (COVERED, 3, 0)

    # The model answers properly again: re-execute from failure.
    gemini.clear_rules()
    gemini.reset()
    again = deployment.reexecute(run.run_id)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    _, reexecution = deployment.runs()
    assert reexecution.parent_run_id == run.run_id
    assert deployment.step_keys(reexecution.run_id, DagsterEventType.STEP_START) == sorted(
        [f"passport_covers.generate_cover[user_{u}]" for u in BLOCKED]
        + ["passport_covers.record_month"]
    )
    assert gemini.generate_requests == 3
    assert all(cover_urls(postgres_url).values())
    progress = deployment.progress("2026-10")
    assert (progress["completed"], progress["failed"]) == (len(USERS), 0)
    assert progress["percent"] == 100.0
    assert progress["summary"]["total"] == len(USERS)

    # Nothing paid twice: a new run of the month reuses every stored cover.
    gemini.reset()
    assert deployment.execute_month("2026-10").returncode == 0
    assert gemini.generate_requests == 0
    assert deployment.progress("2026-10")["summary"]["reused"] == len(USERS)


def test_refused_users_are_named_without_failing_the_month_and_a_later_launch_asks_again(
    deployment, gemini, postgres_url
):
    gemini.script([Reply.no_image("IMAGE_SAFETY")], prompt_contains="Blocked")
    first = deployment.execute_month("2026-10")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    [run] = deployment.runs()
    urls = cover_urls(postgres_url)
    assert {u for u, url in urls.items() if url} == {u.id for u in USERS} - BLOCKED
    assert deployment.step_keys(run.run_id, DagsterEventType.STEP_FAILURE) == []
    assert gemini.generate_requests == len(USERS)  # a refusal is final: never asked twice
    progress = deployment.progress("2026-10")
    assert (progress["completed"], progress["failed"], progress["remaining"]) == (COVERED, 3, 0)
    summary = progress["summary"]
    assert (summary["generated"], summary["refused"], summary["failed"]) == (COVERED, 3, 0)
    assert summary["refusal_reasons"] == {"IMAGE_SAFETY": 3}

    # The prompt is accepted now (say, the template was fixed): the month's next launch asks
    # the model for the three refused users only; the other stored covers are reused.
    gemini.clear_rules()
    gemini.reset()
    assert deployment.execute_month("2026-10").returncode == 0
    assert gemini.generate_requests == 3
    assert all(cover_urls(postgres_url).values())
    summary = deployment.progress("2026-10")["summary"]
    assert (summary["generated"], summary["reused"], summary["refused"]) == (3, COVERED, 0)


@pytest.mark.parametrize(
    ("month", "message"),
    [
        # Not a month key: Dagster's own parse refuses it before it creates a run (the suite
        # also ran "October" and "2026-10 " until 2026-12: the same refusal, a command each).
        ("2026-13", "time data '2026-13' does not match format"),
        # A month key, but not a partition yet: the first step refuses it.
        ("2031-01", "2031-01 is not a month this job covers: months run from 2024-01"),
    ],
)
def test_a_bad_month_is_refused_by_name_before_any_work(deployment, gemini, month, message):
    completed = deployment.execute_month(month)
    assert completed.returncode != 0
    assert message in completed.stdout + completed.stderr
    assert gemini.get_requests == gemini.generate_requests == 0
    for run in deployment.runs():
        assert deployment.step_keys(run.run_id, DagsterEventType.STEP_START) == [
            "passport_covers.month_users"
        ]


def test_a_bad_key_stops_the_run_before_any_paid_call(deployment, gemini):
    deployment.env["GEMINI_API_KEY"] = "AIzaWRONG-key-99999999999"
    completed = deployment.execute_month("2026-10")
    assert completed.returncode != 0
    assert "Gemini rejected the API key" in completed.stdout + completed.stderr
    assert gemini.generate_requests == 0
    [run] = deployment.runs()
    assert deployment.step_keys(run.run_id, DagsterEventType.STEP_START) == [
        "passport_covers.month_users"
    ]
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
    halted = sum("this run was halted" in m for m in messages)
    assert halted >= len(USERS) - 2  # all but the two in flight
    assert all("API_KEY_INVALID" in m for m in messages)
    # Users never tried after the halt are remaining, not failed: the month is not 100 % done.
    progress = deployment.progress("2026-10")
    assert (progress["failed"], progress["remaining"]) == (len(COVER_STEPS) - halted, halted)


# title → what the server answers, and what the user's step must end as
ANSWERS = {
    "Busy": ([503, 503, "ok"], "generated"),
    # A quota the month's 14 requests fit in: the pace it teaches must not stretch the month.
    "Slow down": ([Reply.rate_limited("1s", quota_value=600), "ok"], "generated"),
    "Flaky": ([500, "ok"], "generated"),
    "Gateway": ([504, "ok"], "generated"),
    "Garbled": ([Reply.corrupt_image(), "ok"], "generated"),
    "Refused": ([Reply.no_image("IMAGE_SAFETY")], "refused"),
    "Prohibited": ([Reply.blocked("PROHIBITED_CONTENT")], "refused"),
    "Broken": ([Reply.corrupt_image()], "failed"),
}


def test_every_answer_class_behaves_as_documented_and_the_key_never_leaks(
    deployment, gemini, postgres_url
):
    users = [
        UserRow(i, title=f"{title} trip", visits=[(1, october(9))])
        for i, title in enumerate(ANSWERS, start=1)
    ]
    write_dataset(postgres_url, users)
    for title, (replies, _) in ANSWERS.items():
        gemini.script(replies, prompt_contains=title)
    completed = deployment.execute_month("2026-10")
    assert completed.returncode != 0
    [run] = deployment.runs()
    expected_failed = sorted(
        f"passport_covers.generate_cover[user_{i}]"
        for i, (_, end) in enumerate(ANSWERS.values(), start=1)
        if end == "failed"
    )
    assert deployment.step_keys(run.run_id, DagsterEventType.STEP_FAILURE) == expected_failed
    urls = cover_urls(postgres_url)
    for i, (_, end) in enumerate(ANSWERS.values(), start=1):
        assert bool(urls[i]) is (end == "generated"), list(ANSWERS)[i - 1]
    # Paid calls per user: transient answers retried, permanent ones asked once, and an image
    # that never decodes is asked again once, then the user fails (no step retry).
    assert gemini.requests_for("Busy") == 3
    assert gemini.requests_for("Slow down") == 2
    assert gemini.requests_for("Garbled") == 2
    assert gemini.requests_for("Refused") == 1
    assert gemini.requests_for("Prohibited") == 1
    assert gemini.requests_for("Broken") == 2
    log = deployment.event_log_text()
    assert "IMAGE_SAFETY" in log and "PROHIBITED_CONTENT" in log
    # A refusal is the user's outcome, with its reason and a warning: no failed step, no trace.
    with deployment.instance() as instance:
        outputs = {
            entry.dagster_event.step_key: entry.dagster_event.step_output_data.metadata
            for entry in instance.all_logs(run.run_id, of_type=DagsterEventType.STEP_OUTPUT)
        }
        warnings = [
            entry.user_message
            for entry in instance.all_logs(run.run_id)
            if entry.level == logging.WARNING and "refused by the image model" in entry.user_message
        ]
    for i, (title, (_, end)) in enumerate(ANSWERS.items(), start=1):
        if end == "refused":
            metadata = outputs[f"passport_covers.generate_cover[user_{i}]"]
            assert metadata["status"].value == "refused", title
            assert metadata["reason"].value in ("IMAGE_SAFETY", "PROHIBITED_CONTENT"), title
    assert len(warnings) == 2
    assert not any("Traceback" in w or 'File "' in w for w in warnings)
    # The client's retry warnings reach the run's event log (dagster.yaml manages our loggers).
    assert "generateContent attempt 1 of 3 failed, retrying in" in log
    assert GEMINI_TEST_KEY not in log
    assert deployment.files_containing(GEMINI_TEST_KEY) == []
    assert GEMINI_TEST_KEY not in completed.stdout + completed.stderr


def test_fallback_stores_a_local_cover_for_a_refused_prompt(deployment, gemini, postgres_url):
    deployment.env["PASSPORT_FALLBACK_TO_LOCAL"] = "true"
    write_dataset(postgres_url, [UserRow(1, title="Refused trip", visits=[(1, october(9))])])
    gemini.script([Reply.no_image("IMAGE_SAFETY")], prompt_contains="Refused")
    assert deployment.execute_month("2026-10").returncode == 0
    assert cover_urls(postgres_url)[1]
    [run] = deployment.runs()
    with deployment.instance() as instance:
        [output] = [
            entry.dagster_event.step_output_data.metadata
            for entry in instance.all_logs(run.run_id, of_type=DagsterEventType.STEP_OUTPUT)
            if entry.dagster_event.step_key == "passport_covers.generate_cover[user_1]"
        ]
    assert output["fallback"].value is True
    assert output["model"].value == "local-renderer"


def test_covers_land_in_s3_and_passports_point_at_them(
    deployment, gemini, postgres_url, moto_s3, s3_env
):
    gemini.image_format = "webp"
    deployment.env.update(
        s3_env, PASSPORT_S3_PREFIX="prod", PASSPORT_PUBLIC_BASE_URL="https://covers.example"
    )
    completed = deployment.execute_month(
        "2026-10", {"ops": {"passport_covers": {"config": {"user_ids": [1, 2, 3, 4]}}}}
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    bucket = s3_env["PASSPORT_S3_BUCKET"]
    listing = moto_s3.client.list_objects_v2(Bucket=bucket)["Contents"]
    keys = sorted(item["Key"] for item in listing)
    assert len(keys) == 4
    assert all(key.startswith("prod/covers/2026-10/") and key.endswith(".webp") for key in keys)
    for user_id, url in cover_urls(postgres_url).items():
        if user_id in (1, 2, 3, 4):
            key = url.removeprefix("https://covers.example/")
            assert key in keys
            head = moto_s3.client.head_object(Bucket=bucket, Key=key)
            assert head["ContentType"] == "image/webp"
        else:
            assert url is None
    assert deployment.files_containing(GEMINI_TEST_KEY) == []


def test_private_s3_covers_are_previewed_and_linked_through_presigned_links(
    deployment, gemini, moto_s3, s3_env
):
    deployment.env.update(s3_env)
    completed = deployment.execute_month(
        "2026-10", {"ops": {"passport_covers": {"config": {"user_ids": [1, 2]}}}}
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    [run] = deployment.runs()
    with deployment.instance() as instance:
        # A run of listed users: its summary is an observation (the month is not done by it).
        assert not instance.all_logs(run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION)
        observed = instance.all_logs(run.run_id, of_type=DagsterEventType.ASSET_OBSERVATION)
        outputs = instance.all_logs(run.run_id, of_type=DagsterEventType.STEP_OUTPUT)
    [preview] = [
        metadata["preview"].value
        for entry in observed
        if "preview" in (metadata := entry.asset_observation.metadata)
    ]
    sources = re.findall(r"!\[cover of user (\d+)\]\(([^)]+)\)", preview)
    assert [user_id for user_id, _ in sources] == ["1", "2"]
    links = {
        event.step_key: event.dagster_event.event_specific_data.metadata["cover"].value
        for event in outputs
        if event.step_key.startswith("passport_covers.generate_cover")
    }
    assert sorted(links) == [
        "passport_covers.generate_cover[user_1]",
        "passport_covers.generate_cover[user_2]",
    ]
    # What the operator's browser does with each: a plain GET of a covers' private object.
    for url in [src for _, src in sources] + list(links.values()):
        assert "Signature=" in url
        answer = requests.get(url, timeout=10)
        assert answer.status_code == 200
        assert inspect_image(answer.content).mime_type == "image/png"
