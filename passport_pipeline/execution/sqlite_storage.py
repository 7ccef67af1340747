"""The embedded (sqlite) instance storage with the same atomic pool-slot claim as PostgreSQL's.

Dagster's sqlite event log claims a slot of a pool as dagster-postgres does
(``SqlEventLogStorage._claim_concurrency_slot``): a SELECT of a free slot, then an UPDATE of that
slot with no ``step_key IS NULL`` guard. Two processes can select the same slot between the two
statements and both be told they hold it; measured upstream, 12 processes claiming a pool of 3 got
more than 3 in 10 trials of 10. ``make dev`` is where people try backfills first, so the embedded
default must keep the pool too: here the claim is one guarded statement
(``instance_storage.claim_one_slot``), which sqlite runs under its database write lock.

The checkout's ``dagster.yaml`` sets no storage (so the storage lives under ``DAGSTER_HOME``
wherever that is); the instance class (``passport_pipeline/instance.py``) makes this class the
default instead of ``DagsterSqliteStorage``.
"""

from __future__ import annotations

import yaml

from passport_pipeline.dagster_internals import (
    ConfigurableClassData,
    DagsterSqliteStorage,
    SqliteEventLogStorage,
    sqlite_event_logs_directory,
)
from passport_pipeline.execution.instance_storage import claim_one_slot


class AtomicClaimSqliteEventLogStorage(SqliteEventLogStorage):
    """Dagster's sqlite event log, with a pool-slot claim that cannot double-book."""

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        return cls(inst_data=inst_data, **config_value)

    def _claim_concurrency_slot(self, concurrency_key: str, run_id: str, step_key: str):
        return claim_one_slot(self, concurrency_key, run_id, step_key)


class AtomicClaimSqliteStorage(DagsterSqliteStorage):
    """Dagster's embedded storage (runs, event log, schedules under one directory), with the
    event log above."""

    def __init__(self, base_dir: str, inst_data=None):
        super().__init__(base_dir, inst_data=inst_data)
        self._event_log_storage = AtomicClaimSqliteEventLogStorage(
            sqlite_event_logs_directory(base_dir)
        )

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        return cls(inst_data=inst_data, **config_value)

    @property
    def event_storage_data(self):
        return ConfigurableClassData(
            __name__,
            AtomicClaimSqliteEventLogStorage.__name__,
            yaml.dump({"base_dir": sqlite_event_logs_directory(self.base_dir)}),
        )


def embedded_storage_defaults(base_dir: str) -> dict:
    """The instance's default storages (no ``storage`` in dagster.yaml), with ours."""
    return {
        "storage": ConfigurableClassData(
            __name__, AtomicClaimSqliteStorage.__name__, yaml.dump({"base_dir": base_dir})
        ),
        "event_log_storage": ConfigurableClassData(
            __name__,
            AtomicClaimSqliteEventLogStorage.__name__,
            yaml.dump({"base_dir": sqlite_event_logs_directory(base_dir)}),
        ),
    }
