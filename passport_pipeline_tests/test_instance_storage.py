"""The job on a PostgreSQL-backed Dagster instance, with and without pooled storage."""

from __future__ import annotations

import time

import pytest
import yaml

from passport_pipeline_tests.conftest import fresh_postgres_database
from passport_pipeline_tests.dataset import UserRow, cover_urls, october, write_dataset
from passport_pipeline_tests.deployment import Deployment

STORAGES = {
    "run_storage": "PooledPostgresRunStorage",
    "event_log_storage": "PooledPostgresEventLogStorage",
    "schedule_storage": "PooledPostgresScheduleStorage",
}


@pytest.fixture
def instance_db():
    with fresh_postgres_database("passport_dagster") as (name, admin):
        yield name, admin


def use_postgres_storage(deployment: Deployment, db_name: str, pooled: bool) -> None:
    path = deployment.dagster_home / "dagster.yaml"
    config = yaml.safe_load(path.read_text())
    postgres_db = {
        "hostname": "127.0.0.1",
        "username": "postgres",
        "db_name": db_name,
        "port": 5432,
        "scheme": "postgresql+psycopg2",
    }
    if pooled:
        for key, cls in STORAGES.items():
            config[key] = {
                "module": "passport_pipeline.instance_storage",
                "class": cls,
                "config": {"postgres_db": postgres_db},
            }
    else:
        config["storage"] = {"postgres": {"postgres_db": postgres_db}}
    path.write_text(yaml.safe_dump(config))


def sessions(admin, db_name: str) -> int:
    """Connections ever opened to the database (PostgreSQL counts them when they close)."""
    with admin.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT sessions FROM pg_stat_database WHERE datname = %s", (db_name,))
        return cursor.fetchone()[0]


def run_month_counting_sessions(deployment, admin, db_name) -> int:
    assert deployment.run(*deployment.month_command("2026-09")).returncode == 0  # warms tables
    before = sessions(admin, db_name)
    completed = deployment.execute_month("2026-10")
    assert completed.returncode == 0, completed.stdout[-3000:]
    time.sleep(1.5)  # session statistics are flushed shortly after a connection closes
    return sessions(admin, db_name) - before


def test_pooled_postgres_instance_runs_the_month_with_fewer_connections(
    tmp_path, postgres_url, instance_db
):
    db_name, admin = instance_db
    write_dataset(postgres_url, [UserRow(i, visits=[(1, october(3))]) for i in range(1, 7)])
    counts = {}
    for pooled in (False, True):
        deployment = Deployment.create(tmp_path / str(pooled), PASSPORT_DATABASE_URL=postgres_url)
        use_postgres_storage(deployment, db_name, pooled)
        counts[pooled] = run_month_counting_sessions(deployment, admin, db_name)
        with deployment.instance() as instance:
            assert type(instance.event_log_storage).__name__ == (
                STORAGES["event_log_storage"] if pooled else "PostgresEventLogStorage"
            )
    assert all(cover_urls(postgres_url).values())
    # The same month, the same steps: far fewer new connections per run.
    assert counts[True] * 2 < counts[False], counts
