"""Fresh databases on the real PostgreSQL server at 127.0.0.1:5432 (trust auth, user postgres).

Used by the tests' fixtures (``conftest.py``) and by the benchmarks in ``bench/``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2

PG_ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=10"


def database_url(name: str) -> str:
    """The SQLAlchemy URL of a database on the server (psycopg2: psycopg 3 is not installed)."""
    return f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"


@contextmanager
def fresh_postgres_database(prefix: str, keep: bool = False) -> Iterator[tuple[str, object]]:
    """A new database on the server (its name, and an admin connection); dropped on the way
    out unless ``keep`` (a benchmark's ``--keep``, to look at it afterwards)."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(PG_ADMIN_DSN)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name, admin
    finally:
        if not keep:
            with admin.cursor() as cursor:
                cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
