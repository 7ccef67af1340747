"""Fixtures: real app databases (sqlite files and PostgreSQL databases), Dagster instances."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg2
import pytest
from dagster import DagsterInstance, instance_for_test

from passport_pipeline.resources.app_db import AppDatabase
from passport_pipeline.resources.cover_keys import CoverKeys
from passport_pipeline.resources.image_model import LocalImageModel
from passport_pipeline.resources.image_store import LocalImageStore
from passport_pipeline.resources.pending_covers import PendingCovers

pytest_plugins = ["passport_pipeline_tests.servers.fixtures"]

PG_ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'app.sqlite3'}"


@contextmanager
def fresh_postgres_database(prefix: str) -> Iterator[tuple[str, object]]:
    """A new database on the real PostgreSQL server (its name, and an admin connection)."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(PG_ADMIN_DSN)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name, admin
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh app database on the real PostgreSQL server, dropped afterwards."""
    with fresh_postgres_database("passport_test") as (name, _):
        yield f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"


@pytest.fixture
def instance_url() -> Iterator[str]:
    """A fresh database for a Dagster instance's storage (DAGSTER_PG_URL of deploy/dagster.yaml)."""
    with fresh_postgres_database("passport_dagster") as (name, _):
        yield f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"


@pytest.fixture(params=["sqlite", "postgres"])
def app_db_url(request) -> str:
    """Each test using this runs on a sqlite file and on the PostgreSQL server."""
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
def executor() -> str | None:
    """The executor a deployment's runs use (PASSPORT_EXECUTOR); None: the settings' default.
    Tests whose outcome depends on it parametrize it: ``threads`` and ``multiprocess``."""
    return None


@pytest.fixture
def instance() -> Iterator[DagsterInstance]:
    with instance_for_test() as dagster_instance:
        yield dagster_instance


def local_resources_for(db_url: str, store_root) -> dict:
    """The embedded resources on a given app database and store folder."""
    return {
        "app_db": AppDatabase(url=db_url),
        "image_model": LocalImageModel(),
        "image_store": LocalImageStore(root=str(store_root)),
        "cover_keys": CoverKeys(secret="test-secret-0123456789abcdef"),
        "pending_covers": PendingCovers(root=str(Path(store_root).parent / "pending")),
    }


@pytest.fixture
def local_resources(tmp_path, app_db_url) -> dict:
    return local_resources_for(app_db_url, tmp_path / "store")
