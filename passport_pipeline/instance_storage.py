"""PostgreSQL instance storage that keeps a connection per process.

dagster-postgres opens a new connection for every storage call (``NullPool``), so that idle
webservers hold none. A cover step makes dozens of calls (its events, the pool slot, the run),
and at 50 steps in flight that is a connection storm: each new connection costs a PostgreSQL
backend process. These classes are dagster-postgres's own, with the connection pool that
dagster-postgres itself uses for the webserver (``optimize_for_webserver``): one pooled
connection per process, a few overflow connections, and no statement timeout.

Configure them per storage in ``dagster.yaml`` (``run_storage``, ``event_log_storage``,
``schedule_storage``), so that the step processes, which rebuild the instance from its config,
use them too. Measured (bench/RESULTS.md): PostgreSQL's CPU per step halves, but runs reached
fewer requests in flight (32 against 45 at N=200), so this is an experiment, not the default.
"""

from __future__ import annotations

from dagster._serdes import ConfigurableClassData
from dagster_postgres.event_log import PostgresEventLogStorage
from dagster_postgres.run_storage import PostgresRunStorage
from dagster_postgres.schedule_storage import PostgresScheduleStorage
from dagster_postgres.utils import get_token_provider_from_config, pg_url_from_config

# Kept for an hour, then replaced: long-lived daemons should not hold a stale connection.
_POOL = {"statement_timeout": 0, "pool_recycle": 3600, "max_overflow": 10}


def _from_config(cls, inst_data: ConfigurableClassData | None, config_value):
    storage = cls(
        postgres_url=pg_url_from_config(config_value),
        should_autocreate_tables=config_value.get("should_autocreate_tables", True),
        inst_data=inst_data,
        token_provider=get_token_provider_from_config(config_value),
    )
    storage.optimize_for_webserver(**_POOL)
    return storage


class PooledPostgresRunStorage(PostgresRunStorage):
    """Run storage on PostgreSQL, one pooled connection per process."""

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        return _from_config(cls, inst_data, config_value)


class PooledPostgresEventLogStorage(PostgresEventLogStorage):
    """Event log storage on PostgreSQL, one pooled connection per process."""

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        return _from_config(cls, inst_data, config_value)


class PooledPostgresScheduleStorage(PostgresScheduleStorage):
    """Schedule storage on PostgreSQL, one pooled connection per process."""

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        return _from_config(cls, inst_data, config_value)
