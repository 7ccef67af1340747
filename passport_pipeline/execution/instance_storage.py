"""PostgreSQL instance storage: an atomic pool-slot claim, and connections reused by threads.

Connections. dagster-postgres opens a new connection for every storage call (``NullPool``): a new
PostgreSQL backend per event, which with steps in threads was about half the run's remaining
CPU. The run and event-log storages here keep a small ``QueuePool`` shared by the process's
threads: ``POOL_SIZE`` connections kept, ``MAX_OVERFLOW`` more while a burst lasts. Storage calls
take milliseconds and a step makes about a dozen over its ~30 s, and every event a step writes
goes through one handler lock of the run's log manager anyway; so 4 + 4 per storage never keeps
a step waiting more than a few calls long, and a burst waits (``POOL_TIMEOUT_S``) instead of
failing. A process started by ``multiprocessing`` (the multiprocess executor's step processes)
keeps stock ``NullPool``: one step at a time uses one connection at a time there, and 50 step
processes each keeping connections open is what capped an earlier pooled experiment at 32 in
flight: 3 storages keeping 1 connection each in 50 processes is 150 connections, and PostgreSQL's
``max_connections`` is 100 (about 33 processes could connect; the others waited on retries).

Works around an upstream bug in dagster-postgres 0.29.27 (dagster 1.13.27; still there in
1.13.29): ``SqlEventLogStorage._claim_concurrency_slot``
(``dagster/_core/storage/event_log/sql_event_log.py``) picks a free slot with
``SELECT … FOR UPDATE SKIP LOCKED`` and then claims it with ``UPDATE … WHERE id = ?`` in a second
statement. PostgresEventLogStorage runs on an AUTOCOMMIT connection, so the row lock ends with
the SELECT: two claimers can pick the same slot, and the second UPDATE, which has no
``step_key IS NULL`` guard, overwrites the first. Both steps believe they hold a slot: 12
processes claiming a pool of 3 at once get more than 3 (the figures: README, "Instance
configuration", measured with ``python -m bench.pool_claims``).

Here the slot is picked and claimed in one statement, guarded again by ``step_key IS NULL``,
so a slot is claimed once or not at all.

The pool replaces the storage's engine after dagster-postgres built it, as dagster-postgres's
own ``optimize_for_webserver`` does (``dagster_internals.replace_storage_engine``);
``test_instance_storage.py`` checks that the storage still connects through it.

When upgrading dagster-postgres: read ``_claim_concurrency_slot`` in the new version. If it
claims in one guarded statement (or in a transaction that holds the row lock until the UPDATE),
delete this class and point ``event_log_storage`` in ``deploy/dagster.yaml`` back at
``dagster_postgres.event_log.PostgresEventLogStorage``; if the method changed its signature or
moved, adapt this override. ``test_instance_storage.py`` checks the claim against the server.
"""

from __future__ import annotations

import multiprocessing

import sqlalchemy as db
from dagster_postgres.event_log import PostgresEventLogStorage
from dagster_postgres.run_storage import PostgresRunStorage
from dagster_postgres.utils import (
    create_pg_engine,
    get_token_provider_from_config,
    pg_url_from_config,
)

from passport_pipeline.dagster_internals import (
    ConcurrencySlotsTable,
    ConcurrencySlotStatus,
    replace_storage_engine,
    storage_token_provider,
)

POOL_SIZE = 4
MAX_OVERFLOW = 4
POOL_TIMEOUT_S = 120
# Connections older than this are replaced on checkout (servers and proxies drop idle ones).
POOL_RECYCLE_S = 600


def shares_connections() -> bool:
    """Whether this process pools its storage connections (see the module docstring)."""
    return multiprocessing.parent_process() is None


def _from_config(cls, inst_data, config_value):
    # The parents build their own class by name; build the subclass instead.
    storage = cls(
        inst_data=inst_data,
        postgres_url=pg_url_from_config(config_value),
        should_autocreate_tables=config_value.get("should_autocreate_tables", True),
        token_provider=get_token_provider_from_config(config_value),
    )
    if shares_connections():
        pooled = create_pg_engine(
            storage.postgres_url,
            storage_token_provider(storage),
            isolation_level="AUTOCOMMIT",
            pool_size=POOL_SIZE,
            max_overflow=MAX_OVERFLOW,
            pool_timeout=POOL_TIMEOUT_S,
            pool_recycle=POOL_RECYCLE_S,
            pool_pre_ping=True,
        )
        replace_storage_engine(storage, pooled)
    return storage


class PooledPostgresRunStorage(PostgresRunStorage):
    """dagster-postgres's run storage, with connections shared by the process's threads."""

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        return _from_config(cls, inst_data, config_value)


class AtomicClaimPostgresEventLogStorage(PostgresEventLogStorage):
    """dagster-postgres's event log storage, with a pool-slot claim that cannot double-book and
    connections shared by the process's threads."""

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        return _from_config(cls, inst_data, config_value)

    def _claim_concurrency_slot(
        self, concurrency_key: str, run_id: str, step_key: str
    ) -> ConcurrencySlotStatus:
        # Upstream bug (see the module docstring): the stock method SELECTs then UPDATEs in two
        # autocommit statements.
        return claim_one_slot(self, concurrency_key, run_id, step_key)


def claim_one_slot(storage, concurrency_key: str, run_id: str, step_key: str):
    """Pick a free slot of the pool and claim it in one statement: on PostgreSQL the row lock
    is kept from pick to claim; on sqlite the statement runs under the database's write lock.
    The outer ``step_key IS NULL`` re-checks the row as it is when the claim is written."""
    slots = ConcurrencySlotsTable
    free_slot = (
        db.select(slots.c.id)
        .where(
            slots.c.concurrency_key == concurrency_key,
            slots.c.step_key.is_(None),
            slots.c.deleted.is_(False),
        )
        .with_for_update(skip_locked=True)  # PostgreSQL; sqlite has no row locks to take
        .limit(1)
        .scalar_subquery()
    )
    claim = (
        slots.update()
        .where(slots.c.id == free_slot, slots.c.step_key.is_(None))
        .values(run_id=run_id, step_key=step_key)
        .returning(slots.c.id)
    )
    with storage.index_connection() as conn:
        claimed = conn.execute(claim).fetchone()
    return ConcurrencySlotStatus.CLAIMED if claimed else ConcurrencySlotStatus.BLOCKED
