"""A fresh virtual host on the RabbitMQ server at 127.0.0.1:5672, for tests.

    with fresh_vhost() as broker_url:   # pyamqp://guest:guest@127.0.0.1:5672/passport-test-…
        ...

A vhost is RabbitMQ's separate namespace of queues, as a fresh database is PostgreSQL's: workers
and runs of one test never see another test's (or another deployment's) tasks on the shared
``dagster`` queue. Made and dropped with ``rabbitmqctl``, which needs the server's Erlang cookie
(root, or the rabbitmq group, on the machine running the server).
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

HOST, PORT, USER, PASSWORD = "127.0.0.1", 5672, "guest", "guest"


def _rabbitmqctl(*args: str) -> None:
    completed = subprocess.run(
        ["rabbitmqctl", "--quiet", *args], capture_output=True, text=True, timeout=60, check=False
    )
    if completed.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {completed.stderr or completed.stdout}")


@contextmanager
def fresh_vhost(prefix: str = "passport-test") -> Iterator[str]:
    """A new, empty vhost the guest user may use; yields its broker URL; deleted afterwards."""
    name = f"{prefix}-{uuid.uuid4().hex[:12]}"
    _rabbitmqctl("add_vhost", name)
    try:
        _rabbitmqctl("set_permissions", "-p", name, USER, ".*", ".*", ".*")
        yield f"pyamqp://{USER}:{PASSWORD}@{HOST}:{PORT}/{name}"
    finally:
        _rabbitmqctl("delete_vhost", name)
