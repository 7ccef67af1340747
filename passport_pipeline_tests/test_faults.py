"""Operators' flows through their interruptions, run as operators run them.

Every test drives the real job with `dagster job execute` (the default executor, threads;
PostgreSQL app database; the Gemini client against a local server speaking Gemini's protocol)
and counts paid calls where they are paid: at the server. The multiprocess executor is proven
by one focused test of what differs there (a Ctrl-C cuts the calls in flight off, in step
processes): the Ctrl-C test runs on both.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from dagster import DagsterEventType, DagsterRunStatus

from passport_pipeline.dagster_internals import ErrorSource, from_failure_step_keys
from passport_pipeline_tests.support.dataset import UserRow, cover_urls, october, write_dataset
from passport_pipeline_tests.support.deployment import Deployment, ended_or_stacks
from passport_pipeline_tests.support.fake_gemini import FakeGemini
from passport_pipeline_tests.support.gemini_deployment import (
    gemini_deployment,
    gemini_fake,
)
from passport_pipeline_tests.support.waiting import wait_for

# The app database of every test here is on the PostgreSQL server.
pytestmark = [pytest.mark.postgres, pytest.mark.e2e]

USERS = [UserRow(i, title=f"Trip {i:03d}", visits=[(1 + i % 5, october(9))]) for i in range(1, 13)]


def title(user_id: int) -> str:
    return f"Trip {user_id:03d}"


@pytest.fixture
def gemini() -> Iterator[FakeGemini]:
    yield from gemini_fake()


@pytest.fixture
def deployment(tmp_path, postgres_url, gemini, executor) -> Deployment:
    deployment = gemini_deployment(tmp_path, postgres_url, USERS, gemini)
    if executor is not None:
        deployment.env["PASSPORT_EXECUTOR"] = executor
    return deployment


def covered(postgres_url: str) -> int:
    return sum(1 for url in cover_urls(postgres_url).values() if url)


STEP_ENDS = {
    DagsterEventType.STEP_START,
    DagsterEventType.STEP_SUCCESS,
    DagsterEventType.STEP_FAILURE,
    DagsterEventType.STEP_UP_FOR_RETRY,
    DagsterEventType.STEP_RESTARTED,
}


def last_step_events(deployment: Deployment, run_id: str) -> dict[str, DagsterEventType]:
    """What each step of the run last did: what the run page shows as its state."""
    last: dict[str, DagsterEventType] = {}
    with deployment.instance() as instance:
        for entry in instance.all_logs(run_id):
            event = entry.dagster_event
            if event is not None and event.step_key and event.event_type in STEP_ENDS:
                last[event.step_key] = event.event_type
    return last


def interrupt_half_way(
    deployment: Deployment, gemini: FakeGemini, command: list[str], done: int = 4
) -> str:
    """Ctrl-C a command that runs the month once ``done`` more passports have their cover;
    the run's id."""
    deployment.set_pool_limit(2)
    # 2 at a time, 1 s each: the stop lands seconds before the month could end by itself.
    gemini.latency_s = 1.0
    database = deployment.env["PASSPORT_DATABASE_URL"]
    done += covered(database)
    process = deployment.start(*command)
    wait_for(lambda: covered(database) >= done, "the run's first covers", 180, alive=process)
    process.send_signal(signal.SIGINT)
    output = ended_or_stacks(process, 180)
    assert process.returncode != 0, output[-3000:]
    run = deployment.runs()[-1]
    assert run.status in (DagsterRunStatus.CANCELED, DagsterRunStatus.FAILURE)
    return run.run_id


@pytest.mark.parametrize("executor", ["threads", "multiprocess"])
def test_ctrl_c_then_reexecute_from_failure_covers_every_user_and_pays_once(
    deployment, gemini, postgres_url
):
    run_id = interrupt_half_way(deployment, gemini, deployment.month_command("2026-10"))
    covered = {user for user, url in cover_urls(postgres_url).items() if url}
    assert 4 <= len(covered) < len(USERS)
    paid_before = {user.id: gemini.requests_for(title(user.id)) for user in USERS}

    # Each user is covered, or a named failure or stop; those whose step never started say so,
    # which is what lets Dagster's own re-execution retry them. Stopped users are remaining:
    # the month is not done.
    progress = deployment.progress("2026-10")
    assert progress["total"] == 12
    assert progress["remaining"] == 12 - progress["completed"] - progress["failed"] > 0
    with deployment.instance() as instance:
        failure_data = {
            entry.dagster_event.step_key: entry.dagster_event.step_failure_data
            for entry in instance.all_logs(run_id, of_type=DagsterEventType.STEP_FAILURE)
        }
        failures = {key: data.error.message for key, data in failure_data.items()}
        never_started = {key for key, message in failures.items() if "step started" in message}
        assert never_started, failures
        assert all("Re-execute the run from failure" in failures[key] for key in never_started)
        started = {
            entry.dagster_event.step_key
            for entry in instance.all_logs(run_id, of_type=DagsterEventType.STEP_START)
        }
        assert never_started.isdisjoint(started)
        # Every user's step started, or ended named (a step process still starting when the
        # Ctrl-C came fails as Dagster's interrupt, without a start).
        assert never_started | started | set(failures) >= {
            f"passport_covers.generate_cover[user_{u.id}]" for u in USERS
        }

    # A stop is a stop: interrupted steps end as canceled, not "up for retry" (a step process
    # cut off while starting is put up for retry by Dagster first, then ends stopped: see
    # execution/test_multiprocess_stop.py), and the run page's progress tag says where the
    # month stands.
    assert DagsterEventType.STEP_UP_FOR_RETRY not in last_step_events(deployment, run_id).values()
    canceled = {key for key, message in failures.items() if ": canceled: the run was" in message}
    # A Ctrl-C that lands in a step outside the op's body (loading its input, storing its output)
    # is Dagster's own interrupt failure: the step was stopped, not failed, and is not retried.
    cut = {key for key, data in failure_data.items() if data.error_source == ErrorSource.INTERRUPT}
    assert canceled | never_started | cut == set(failures), failures
    # Every covered user is completed, but one whose step the Ctrl-C caught storing its output
    # after the cover was linked (a stop, counted remaining; its re-execution reuses the cover).
    assert progress["completed"] <= len(covered) <= progress["completed"] + len(cut)
    [run] = deployment.runs()
    done = progress["completed"] + progress["failed"]
    assert run.tags["passport/progress"].startswith(f"{done} of {len(USERS)} users done")
    assert f"; {progress['remaining']} remaining" in run.tags["passport/progress"]
    assert progress["status"] in ("canceled", "failure")

    # What the UI's "Re-execute → From failure" plans from the run's event log as it was left:
    # every user without a cover and the month's record; no user whose step finished (one cut
    # off after its upload runs again and reuses the stored cover at no cost).
    with deployment.instance() as instance:
        planned = set(from_failure_step_keys(instance, instance.get_run_by_id(run_id)))
    uncovered = {f"passport_covers.generate_cover[user_{u.id}]" for u in USERS} - {
        f"passport_covers.generate_cover[user_{u}]" for u in covered
    }
    assert uncovered <= planned and "passport_covers.record_month" in planned
    assert set(deployment.step_keys(run_id, DagsterEventType.STEP_SUCCESS)).isdisjoint(planned)

    # What that button runs, as our command runs it.
    gemini.latency_s = 0
    again = deployment.reexecute(run_id)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert all(cover_urls(postgres_url).values())
    for user in USERS:
        if user.id in covered:  # a stored cover is never paid twice
            assert gemini.requests_for(title(user.id)) == paid_before[user.id] == 1
        else:  # one more call each; at most the 2 cut off in flight were asked twice in all
            assert gemini.requests_for(title(user.id)) == paid_before[user.id] + 1
    assert gemini.generate_requests <= len(USERS) + 2
    progress = deployment.progress("2026-10")
    assert (progress["completed"], progress["failed"], progress["remaining"]) == (12, 0, 0)
    assert progress["summary"]["total"] == 12
    assert progress["status"] == "success"
    watched = deployment.run(
        sys.executable, "-m", "passport_pipeline.cli.progress", "--run", run_id, "--watch"
    )
    assert watched.returncode == 0, watched.stderr
    assert "12/12" in watched.stderr and "status: success" in watched.stdout


def test_a_reexecution_stopped_in_turn_is_reexecuted_to_the_end(deployment, gemini, postgres_url):
    first = interrupt_half_way(deployment, gemini, deployment.month_command("2026-10"))
    reexecute = [sys.executable, "-m", "passport_pipeline.cli.reexecute", first]
    second = interrupt_half_way(deployment, gemini, reexecute, done=2)
    assert not all(cover_urls(postgres_url).values())
    gemini.latency_s = 0
    third = deployment.reexecute(second)
    assert third.returncode == 0, third.stdout[-3000:] + third.stderr[-3000:]
    assert all(cover_urls(postgres_url).values())
    assert deployment.progress("2026-10")["remaining"] == 0
    assert gemini.generate_requests <= len(USERS) + 2 + 2  # each stop cut off at most 2 calls


def test_an_older_month_run_after_a_newer_one_moves_no_passport_backwards(
    deployment, gemini, postgres_url
):
    september = datetime(2026, 9, 20, 3, tzinfo=UTC)
    users = [
        UserRow(1, title="Both months", visits=[(1, october(2)), (2, september)]),
        UserRow(2, title="September only", visits=[(3, september)]),
    ]
    write_dataset(postgres_url, users)
    assert deployment.execute_month("2026-10").returncode == 0
    october_cover = cover_urls(postgres_url)[1]
    completed = deployment.execute_month("2026-09")
    assert completed.returncode == 0, completed.stdout[-3000:]
    urls = cover_urls(postgres_url)
    assert urls[1] == october_cover
    assert "/covers/2026-09/" in urls[2]
    assert gemini.generate_requests == 3


def test_a_weak_key_secret_fails_the_run_before_any_user_step(deployment, gemini):
    # (Where the bar is, 15 characters refused, is resources/test_image_store.py's.)
    deployment.env["PASSPORT_KEY_SECRET"] = "short"
    completed = deployment.execute_month("2026-10")
    assert completed.returncode != 0
    message = "PASSPORT_KEY_SECRET holds 5 characters: a cover key secret needs at least 16"
    assert message in completed.stdout + completed.stderr
    [run] = deployment.runs()
    assert deployment.step_keys(run.run_id, DagsterEventType.STEP_START) == [
        "passport_covers.month_users"
    ]
    assert deployment.step_keys(run.run_id, DagsterEventType.STEP_UP_FOR_RETRY) == []
    assert gemini.generate_requests == 0


def test_a_shared_store_without_a_secret_refuses_to_start(deployment, gemini, s3_env):
    deployment.env.update(s3_env)
    del deployment.env["PASSPORT_KEY_SECRET"]
    completed = deployment.execute_month("2026-10")
    assert completed.returncode != 0
    assert "PASSPORT_IMAGE_STORE=s3 needs PASSPORT_KEY_SECRET" in completed.stderr
    assert deployment.runs() == []
    assert gemini.get_requests == gemini.generate_requests == 0
    assert not (deployment.root / "home" / "key_secret").exists()


def test_a_cover_whose_upload_failed_is_uploaded_later_without_paying_again(
    deployment, gemini, postgres_url
):
    # The store cannot take the month's covers (a file stands where its folder goes), though
    # the model is paid: every upload fails.
    month_folder = deployment.root / "home" / "images" / "covers" / "2026-10"
    month_folder.parent.mkdir(parents=True)
    month_folder.write_text("not a folder")
    user_ids = [1, 2, 3]
    config = {"ops": {"passport_covers": {"config": {"user_ids": user_ids}}}}
    first = deployment.execute_month("2026-10", config)
    assert first.returncode != 0
    [run] = deployment.runs()
    # Each user's step ran three times (the retry policy); the model was asked once per user.
    retried = deployment.step_keys(run.run_id, DagsterEventType.STEP_UP_FOR_RETRY)
    assert retried == sorted(
        f"passport_covers.generate_cover[user_{u}]" for u in user_ids for _ in range(2)
    )
    assert gemini.generate_requests == 3
    assert not any(cover_urls(postgres_url).values())

    month_folder.unlink()  # the store is back
    again = deployment.reexecute(run.run_id)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert gemini.generate_requests == 3  # one paid call per user, in all
    assert len(list(month_folder.iterdir())) == 3
    urls = cover_urls(postgres_url)
    assert all(urls[u] for u in user_ids)
    assert list((deployment.root / "home" / "pending").iterdir()) == []


def test_a_missing_bucket_fails_the_run_before_any_paid_call(deployment, gemini, s3_env):
    deployment.env.update(s3_env, PASSPORT_S3_BUCKET="passport-test-no-such-bucket")
    completed = deployment.execute_month("2026-10")
    assert completed.returncode != 0
    assert "bucket passport-test-no-such-bucket does not exist" in completed.stderr
    [run] = deployment.runs()
    assert deployment.step_keys(run.run_id, DagsterEventType.STEP_START) == [
        "passport_covers.month_users"
    ]
    assert gemini.generate_requests == 0
