"""The production instance (deploy/dagster.yaml) on the real PostgreSQL server, and its
pool-slot claim under a real race."""

from __future__ import annotations

import shutil

import pytest
from dagster import DagsterInstance, QueuedRunCoordinator

from passport_pipeline.execution.instance_storage import AtomicClaimPostgresEventLogStorage
from passport_pipeline_tests.support.claimers import Storage, claim_race
from passport_pipeline_tests.support.deployment import REPO

pytestmark = pytest.mark.postgres


def test_twelve_steps_claiming_a_pool_of_three_at_once_get_three_slots(instance_url):
    storage = Storage(
        AtomicClaimPostgresEventLogStorage.__module__,
        AtomicClaimPostgresEventLogStorage.__name__,
        instance_url,
    )
    claimed = claim_race(storage, claimers=12, trials=8, limit=3)
    # Never above the pool (stock dagster-postgres 0.29.27 hands out up to 11 here), and never
    # below it either: twelve claimers keep every slot busy.
    assert claimed == [3] * 8


def test_the_production_instance_config_builds_our_storage(tmp_path, monkeypatch, instance_url):
    shutil.copy(REPO / "deploy" / "dagster.yaml", tmp_path / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_PG_URL", instance_url)
    with DagsterInstance.from_config(str(tmp_path)) as instance:
        assert type(instance.event_log_storage) is AtomicClaimPostgresEventLogStorage
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        assert instance.global_op_concurrency_default_limit == 50
        # The database is the one the environment names.
        assert instance.event_log_storage.postgres_url == instance_url
