"""The embedded instance (the checkout's dagster.yaml, sqlite under DAGSTER_HOME) holds the
pool's limit under a real race of processes, as the PostgreSQL one does."""

from __future__ import annotations

import shutil

from dagster import DagsterInstance

from passport_pipeline.execution.sqlite_storage import AtomicClaimSqliteEventLogStorage
from passport_pipeline.instance import PassportInstance
from passport_pipeline_tests.support.claimers import InstanceHomeStorage, claim_race
from passport_pipeline_tests.support.deployment import REPO


def checkout_home(tmp_path) -> str:
    shutil.copy(REPO / "dagster.yaml", tmp_path / "dagster.yaml")
    return str(tmp_path)


def test_the_checkouts_instance_builds_the_atomic_claim(tmp_path):
    with DagsterInstance.from_config(checkout_home(tmp_path)) as instance:
        assert type(instance) is PassportInstance
        assert type(instance.event_log_storage) is AtomicClaimSqliteEventLogStorage
        assert instance.global_op_concurrency_default_limit == 50
        # Runs and their step processes rebuild the instance from its ref: the same storage.
        with DagsterInstance.from_ref(instance.get_ref()) as rebuilt:
            assert type(rebuilt.event_log_storage) is AtomicClaimSqliteEventLogStorage


def test_twelve_steps_claiming_a_pool_of_three_at_once_get_three_slots(tmp_path):
    claimed = claim_race(InstanceHomeStorage(checkout_home(tmp_path)), 12, trials=8, limit=3)
    # Never above the pool (Dagster's own sqlite claim hands out more than 3 here), and never
    # below it: twelve claimers keep every slot busy.
    assert claimed == [3] * 8
