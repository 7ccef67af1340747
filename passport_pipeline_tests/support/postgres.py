"""Fresh databases on the real PostgreSQL server at 127.0.0.1:5432 (trust auth, user postgres).

Used by the tests' fixtures (``conftest.py``) and by the benchmarks in ``bench/``.
"""

from __future__ import annotations

import fcntl
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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


# A Dagster instance on PostgreSQL keeps pooled connections in every process of a deployment
# (run, daemon, webserver, workers: up to about 35 for a run process). The server allows 100
# (PostgreSQL's default), so the suite's workers run at most this many such tests at once.
INSTANCE_SLOTS = 3


@contextmanager
def instance_slot(lock_dir: Path, slots: int = INSTANCE_SLOTS, timeout_s: float = 900):
    """Hold one of ``slots`` file locks in ``lock_dir`` (shared by the suite's xdist workers)
    while a test runs a Dagster instance on the server; wait for one when all are held."""
    lock_dir.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout_s
    while True:
        for slot in range(slots):
            handle = os.open(lock_dir / f"slot-{slot}", os.O_CREAT | os.O_RDWR)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(handle)
                continue
            try:
                yield slot
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
                os.close(handle)
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"no PostgreSQL instance slot free in {timeout_s} s")
        time.sleep(0.25)
