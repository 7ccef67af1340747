"""Steps on Celery workers: two worker processes stand in for two machines.

The deployment is the production one: ``deploy/dagster.yaml`` on PostgreSQL, the run started by
``dagster job execute`` with ``PASSPORT_EXECUTOR=celery``, RabbitMQ (a fresh vhost per test) as
the broker, covers and step records in S3 (moto's server), Gemini at a local server speaking its
protocol. Workers are started with ``deploy/celery_worker.sh``. Which worker ran which step is
read from Dagster's own record (the engine event each worker writes as it takes a step); paid
calls and concurrency are counted where they happen, at the Gemini server.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import DagsterEventType, DagsterInstance

from passport_pipeline_tests.support.dataset import UserRow, cover_urls, october, write_dataset
from passport_pipeline_tests.support.deployment import BIN, REPO, Deployment
from passport_pipeline_tests.support.fake_gemini import FakeGemini, Reply
from passport_pipeline_tests.support.rabbitmq import fresh_vhost
from passport_pipeline_tests.support.waiting import wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]

API_KEY = "AIzaTEST-celery-key-000111222333444"
USERS = [UserRow(i, title=f"Trip {i:03d}", visits=[(1 + i % 5, october(9))]) for i in range(1, 13)]
POOL = 3
WORKER_THREADS = 3
STARTUP_TIMEOUT_S = 120
RUN_TIMEOUT_S = 300


def title(user_id: int) -> str:
    return f"Trip {user_id:03d}"


def cover_step(user_id: int) -> str:
    return f"passport_covers.generate_cover[user_{user_id}]"


class Workers:
    """Celery worker processes of one deployment, each in a session of its own."""

    def __init__(self, deployment: Deployment):
        self.deployment = deployment
        self.processes: dict[str, subprocess.Popen] = {}

    def start(self, name: str) -> None:
        log = self.deployment.root / f"worker-{name}.log"
        with log.open("w") as out:
            self.processes[name] = subprocess.Popen(
                [
                    str(REPO / "deploy/celery_worker.sh"),
                    "-c",
                    str(WORKER_THREADS),
                    "-n",
                    f"{name}@%h",
                ],
                cwd=REPO,
                env=self.deployment.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for(
            lambda: " ready." in log.read_text(),
            f"worker {name} ready (log: {log})",
            STARTUP_TIMEOUT_S,
            0.2,
            self.processes[name],
        )

    def kill(self, name: str) -> None:
        """What a lost machine does: no warm shutdown, no goodbye to the broker."""
        process = self.processes[name]
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)


@pytest.fixture
def gemini() -> Iterator[FakeGemini]:
    with FakeGemini(api_keys=[API_KEY]) as server:
        yield server


@pytest.fixture
def deployment(tmp_path, postgres_url, instance_url, gemini, s3_env) -> Iterator[Deployment]:
    write_dataset(postgres_url, USERS)
    with fresh_vhost() as broker_url:
        deployment = Deployment.with_gemini(
            tmp_path,
            postgres_url,
            gemini.base_url,
            API_KEY,
            instance_url=instance_url,
            PASSPORT_STEP_RETRY_DELAY_S="0.2",
            PASSPORT_EXECUTOR="celery",
            PASSPORT_CELERY_BROKER=broker_url,
            **s3_env,
        )
        deployment.env["PATH"] = f"{BIN}{os.pathsep}{deployment.env.get('PATH', '')}"
        deployment.set_pool_limit(POOL)
        yield deployment


@pytest.fixture
def workers(deployment) -> Iterator[Workers]:
    started = Workers(deployment)
    try:
        started.start("a")
        started.start("b")
        yield started
    finally:
        started.stop_all()


def start_month(deployment: Deployment) -> tuple[subprocess.Popen, Path]:
    log = deployment.root / "run.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            deployment.month_command("2026-10"),
            cwd=REPO,
            env=deployment.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return process, log


def finish(process: subprocess.Popen, log: Path) -> int:
    try:
        return process.wait(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise AssertionError(f"the run did not end: {log.read_text()[-5000:]}") from None


def workers_of_steps(instance: DagsterInstance, run_id: str) -> list[tuple[str, str]]:
    """(step key, worker name) for every time a worker took a step, in the event log's order."""
    taken = []
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT):
        metadata = entry.dagster_event.engine_event_data.metadata
        if "Celery worker" in metadata:
            taken.append((entry.step_key, metadata["Celery worker"].value.split("@")[0]))
    return taken


def succeeded(instance: DagsterInstance, run_id: str) -> set[str]:
    return {
        entry.step_key for entry in instance.all_logs(run_id, of_type=DagsterEventType.STEP_SUCCESS)
    }


def peak(intervals: list[tuple[float, float | None]]) -> int:
    """The most intervals open at one instant (an open end is still open)."""
    points = sorted(
        [(start, 1) for start, _ in intervals]
        + [(end, -1) for _, end in intervals if end is not None],
        key=lambda point: (point[0], point[1]),
    )
    level = highest = 0
    for _, change in points:
        level += change
        highest = max(highest, level)
    return highest


def user_of(step_key: str) -> int | None:
    if "[user_" not in step_key:
        return None
    return int(step_key.rsplit("_", 1)[1].rstrip("]"))


def a_held_call_on(
    worker: str,
    deployment: Deployment,
    gemini: FakeGemini,
    process: subprocess.Popen,
    besides: int,
) -> int:
    """With Gemini's answers held, a user (not ``besides``) whose step ``worker`` runs and whose
    call waits at Gemini. Held calls of the other worker's steps are answered meanwhile, so the
    month goes on until ``worker`` takes a cover step."""

    with deployment.instance() as instance:

        def held_on_worker() -> int | None:
            runs = instance.get_runs(limit=1)
            if not runs:
                return None
            done = succeeded(instance, runs[0].run_id)
            for step, taken_by in workers_of_steps(instance, runs[0].run_id):
                user = user_of(step)
                if user is None or step in done or gemini.in_flight_since(title(user)) is None:
                    continue
                if taken_by == worker and user != besides:
                    return user
                gemini.release_answers(title(user))
            return None

        return wait_for(
            held_on_worker, f"worker {worker} to take a cover step", RUN_TIMEOUT_S, 0.05, process
        )


def test_a_killed_worker_loses_no_user_and_from_failure_runs_the_failed_user_on_the_workers(
    deployment, workers, gemini, postgres_url, moto_s3
):
    """What differs on Celery, in one month: two machines share the pool, one is lost
    mid-call, a user that fails is re-executed from failure on the machine left."""
    # Bytes that are no image: asked again once, then user 5's step fails for good.
    failing = 5
    gemini.script([Reply.corrupt_image()], prompt_contains=title(failing))
    gemini.latency_s = 0.5
    gemini.hold_answers()
    process, log = start_month(deployment)
    try:
        # Worker a's machine is lost while it waits on Gemini for a user's cover.
        victim = a_held_call_on("a", deployment, gemini, process, besides=failing)
        workers.kill("a")
        killed_at = time.monotonic()
        gemini.release_answers()
        returncode = finish(process, log)
    finally:
        if process.poll() is None:
            process.kill()
    assert returncode != 0, log.read_text()[-5000:]

    [first] = deployment.runs()
    with deployment.instance() as instance:
        taken = workers_of_steps(instance, first.run_id)
        assert cover_step(failing) not in succeeded(instance, first.run_id)
    assert {worker for step, worker in taken if "generate_cover" in step} == {"a", "b"}
    # Never more than the pool's 3 at Gemini at once, across both machines. Calls the dead
    # worker left behind go on at the server (nobody is there to read the answer) while their
    # steps run again elsewhere under the same slots: they are counted apart.
    workers_by_step = defaultdict(list)
    for step, worker in taken:
        workers_by_step[step].append(worker)
    handed_over = {user_of(step) for step, ws in workers_by_step.items() if ws == ["a", "b"]}
    with gemini.lock:
        calls = [(r.start, r.end, r.prompt) for r in gemini.records if r.endpoint == "generate"]
    orphans = [
        (start, end)
        for start, end, prompt in calls
        if start < killed_at
        and (end is None or end > killed_at)
        and any(title(user) in prompt for user in handed_over)
    ]
    assert peak([(start, end) for start, end, _ in calls if (start, end) not in orphans]) <= POOL
    assert 1 <= len(orphans) <= POOL
    # The step cut off on a was handed to b by the broker and finished there.
    assert victim in handed_over
    # Nothing lost: every other user has a cover; the calls cut off by the kill are the only
    # ones paid twice, and there were at most as many as a could hold (the pool's 3).
    covered = {user for user, url in cover_urls(postgres_url).items() if url}
    assert covered == {u.id for u in USERS} - {failing}
    assert gemini.requests_for(title(victim)) == 2
    assert all(gemini.requests_for(title(u.id)) in (1, 2) for u in USERS if u.id != failing)
    failing_paid = gemini.requests_for(title(failing))
    assert failing_paid == 2 + (failing in handed_over)
    assert gemini.generate_requests <= len(USERS) + 1 + POOL
    progress = deployment.progress("2026-10")
    assert (progress["completed"], progress["failed"], progress["remaining"]) == (11, 1, 0)
    # The run process gave back every slot it claimed for the workers.
    with deployment.instance() as instance:
        assert instance.event_log_storage.get_concurrency_info("gemini").active_slot_count == 0

    gemini.clear_rules()  # the model draws the user this time
    paid_before = {u.id: gemini.requests_for(title(u.id)) for u in USERS}
    again = deployment.reexecute(first.run_id)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    second = deployment.runs()[-1]
    with deployment.instance() as instance:
        taken_second = workers_of_steps(instance, second.run_id)
    # Only the failed user and the month's record ran again, on the machine left; the record
    # read the other 11 users' records that the first run's steps wrote to S3, from both
    # machines.
    assert set(taken_second) == {(cover_step(failing), "b"), ("passport_covers.record_month", "b")}
    assert all(cover_urls(postgres_url).values())
    assert gemini.requests_for(title(failing)) == failing_paid + 1
    others = [u.id for u in USERS if u.id != failing]
    assert all(gemini.requests_for(title(user)) == paid_before[user] for user in others)
    progress = deployment.progress("2026-10")
    assert (progress["completed"], progress["failed"], progress["remaining"]) == (12, 0, 0)
    assert progress["status"] == "success"
    assert progress["summary"]["total"] == 12

    # The broker's URL (it may hold a password) is in no run's config and no event.
    vhost = deployment.env["PASSPORT_CELERY_BROKER"].rsplit("/", 1)[1]
    assert vhost not in deployment.event_log_text()
    assert all(vhost not in repr(run.run_config) for run in deployment.runs())

    # The step records are in the covers' bucket, not on any one machine's disk.
    bucket = deployment.env["PASSPORT_S3_BUCKET"]
    listed = moto_s3.client.list_objects_v2(Bucket=bucket, Prefix="dagster-step-records/")
    keys = [item["Key"] for item in listed.get("Contents", [])]
    assert any(f"/{first.run_id}/" in key and "generate_cover" in key for key in keys), keys
    assert not list((deployment.dagster_home / "storage").rglob(first.run_id))
