"""The production instance (deploy/dagster.yaml) on the real PostgreSQL server, and its
pool-slot claim under a real race."""

from __future__ import annotations

import multiprocessing
import shutil
import threading

import pytest
import sqlalchemy as db
from dagster import DagsterInstance, QueuedRunCoordinator

from passport_pipeline.dagster_internals import storage_engine
from passport_pipeline.execution.instance_storage import (
    MAX_OVERFLOW,
    POOL_SIZE,
    AtomicClaimPostgresEventLogStorage,
    PooledPostgresRunStorage,
)
from passport_pipeline_tests.support.claimers import Storage, claim_race
from passport_pipeline_tests.support.deployment import REPO

pytestmark = [pytest.mark.postgres, pytest.mark.internals, pytest.mark.e2e]


def test_twelve_steps_claiming_a_pool_of_three_at_once_get_three_slots(instance_url):
    storage = Storage(
        AtomicClaimPostgresEventLogStorage.__module__,
        AtomicClaimPostgresEventLogStorage.__name__,
        instance_url,
    )
    claimed = claim_race(storage, claimers=12, trials=8, limit=3)
    # Never above the pool (stock dagster-postgres 0.29.27 hands out more: README, "Instance
    # configuration"), and never below it either: twelve claimers keep every slot busy.
    assert claimed == [3] * 8


def test_the_production_instance_config_builds_our_storage(tmp_path, monkeypatch, instance_url):
    shutil.copy(REPO / "deploy" / "dagster.yaml", tmp_path / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_PG_URL", instance_url)
    with DagsterInstance.from_config(str(tmp_path)) as instance:
        assert type(instance.event_log_storage) is AtomicClaimPostgresEventLogStorage
        assert type(instance.run_storage) is PooledPostgresRunStorage
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        assert instance.global_op_concurrency_default_limit == 50
        # The database is the one the environment names.
        assert instance.event_log_storage.postgres_url == instance_url


def pooled(storage_class, instance_url):
    """A storage built the way dagster.yaml builds it."""
    return storage_class.from_config_value(None, {"postgres_url": instance_url})


def backend_pids(storage, threads: int, calls: int) -> tuple[int, set[int]]:
    """``threads`` threads making ``calls`` storage calls each at once: calls made, the
    PostgreSQL server processes (one per connection) that answered them."""
    start = threading.Barrier(threads, timeout=60)
    seen: list[int] = []
    # The event log's connections are index_connection(); the run storage's, connect().
    connect = getattr(storage, "index_connection", None) or storage.connect

    def work() -> None:
        start.wait()
        for _ in range(calls):
            with connect() as conn:
                seen.append(conn.execute(db.text("SELECT pg_backend_pid()")).scalar())

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    return len(seen), set(seen)


@pytest.mark.parametrize(
    "storage_class", [AtomicClaimPostgresEventLogStorage, PooledPostgresRunStorage]
)
def test_a_process_threads_share_a_few_connections(instance_url, storage_class):
    storage = pooled(storage_class, instance_url)
    try:
        calls, servers = backend_pids(storage, threads=24, calls=20)
    finally:
        storage.dispose()
    assert calls == 24 * 20
    assert 1 <= len(servers) <= POOL_SIZE + MAX_OVERFLOW


def test_stock_dagster_postgres_connects_for_every_call(instance_url):
    # What the pool replaces: a new server process per call.
    from dagster_postgres.event_log import PostgresEventLogStorage

    storage = PostgresEventLogStorage(instance_url)
    try:
        calls, servers = backend_pids(storage, threads=4, calls=10)
    finally:
        storage.dispose()
    assert calls == 40
    assert len(servers) > POOL_SIZE + MAX_OVERFLOW


def test_threads_of_one_process_claiming_a_pool_of_three_get_three_slots(instance_url):
    storage = pooled(AtomicClaimPostgresEventLogStorage, instance_url)
    storage.set_concurrency_slots("gemini", 3)
    try:
        for trial in range(4):
            start = threading.Barrier(16, timeout=60)
            claimed: list[bool] = []

            def claim(index: int, trial: int = trial, start=start, claimed=claimed) -> None:
                start.wait()
                status = storage.claim_concurrency_slot("gemini", f"run-{trial}", f"step-{index}")
                claimed.append(status.is_claimed)

            workers = [threading.Thread(target=claim, args=(i,)) for i in range(16)]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join(timeout=120)
            assert (len(claimed), sum(claimed)) == (16, 3)
            storage.free_concurrency_slots_for_run(f"run-{trial}")
    finally:
        storage.dispose()


def _pool_class_in_child(instance_url: str, answers) -> None:
    storage = pooled(AtomicClaimPostgresEventLogStorage, instance_url)
    answers.put(type(storage_engine(storage).pool).__name__)
    storage.dispose()


def test_a_step_process_of_the_multiprocess_executor_keeps_no_connection(instance_url):
    # 50 step processes keeping connections would exceed PostgreSQL's max_connections.
    context = multiprocessing.get_context("forkserver")
    answers = context.Queue()
    child = context.Process(target=_pool_class_in_child, args=(instance_url, answers))
    child.start()
    try:
        assert answers.get(timeout=120) == "NullPool"
    finally:
        child.join(timeout=60)
    parent = pooled(AtomicClaimPostgresEventLogStorage, instance_url)
    assert type(storage_engine(parent).pool).__name__ == "QueuePool"
    parent.dispose()
