"""Fixtures: real app databases (sqlite files and PostgreSQL databases), Dagster instances."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest
from dagster import DagsterInstance, instance_for_test

from passport_pipeline_tests.support.launch import local_resources_for
from passport_pipeline_tests.support.postgres import (
    database_url,
    fresh_postgres_database,
    instance_slot,
)

pytest_plugins = [
    "passport_pipeline_tests.support.fixtures",
    "passport_pipeline_tests.support.crash_safe_groups",
]


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items) -> None:
    """End-to-end tests (marked ``e2e``) first: they take most of the suite's time, and on
    xdist's workers the short tests then fill the gaps instead of trailing behind the long
    ones. The order is the same on every worker. (Starting
    the daemon, webserver and browser tests all at once was slower: 445 s against 421 s.)"""
    items.sort(key=lambda item: item.get_closest_marker("e2e") is None)
    _check_groups_hold(config, items)


def _check_groups_hold(config, items) -> None:
    """A module that shares one deployment among its tests (``xdist_group``) must run on one
    worker, or each worker it lands on starts that deployment again. pytest-xdist marks a
    grouped test by a suffix of its id; under pytest 9.2 that suffix is silently lost (the
    backend's webserver and daemon were started three times a suite). Such a test fails by
    name (a usage error here would only crash xdist's worker without a word)."""
    if not getattr(config.option, "loadgroup", False):  # set on xdist's workers only
        return
    for item in items:
        if item.get_closest_marker("xdist_group") and "@" not in item.nodeid:
            item.stash[UNGROUPED] = (
                f"pytest-xdist's --dist loadgroup did not group this test under pytest "
                f"{pytest.__version__}: its module's deployment would start on every worker "
                "(pyproject.toml pins pytest below 9.2 for this)"
            )


UNGROUPED = pytest.StashKey[str]()


@pytest.fixture(autouse=True)
def grouped_as_marked(request) -> None:
    if UNGROUPED in request.node.stash:
        pytest.fail(request.node.stash[UNGROUPED])


@pytest.fixture(autouse=True)
def signals_as_a_shell_leaves_them() -> None:
    """A child process keeps every signal its parent ignores, through exec. Some test left this
    worker ignoring SIGINT, and Dagster's in-process runs copy SIGINT's handler onto SIGTERM
    (``dagster/_utils/interrupts.py``): the exporter started next ignored its SIGTERM
    (``SigIgn`` in /proc). Each test starts from a shell's defaults."""
    for signum, default in (
        (signal.SIGINT, signal.default_int_handler),
        (signal.SIGTERM, signal.SIG_DFL),
    ):
        if signal.getsignal(signum) == signal.SIG_IGN:
            signal.signal(signum, default)


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'app.sqlite3'}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh app database on the real PostgreSQL server, dropped afterwards."""
    with fresh_postgres_database("passport_test") as (name, _):
        yield database_url(name)


@pytest.fixture
def instance_url(tmp_path_factory) -> Iterator[str]:
    """A fresh database for a Dagster instance's storage (DAGSTER_PG_URL of deploy/dagster.yaml),
    held with one of the suite's PostgreSQL instance slots (``support/postgres.py``)."""
    shared = tmp_path_factory.getbasetemp().parent / "postgres-instance-slots"
    with (
        instance_slot(shared),
        fresh_postgres_database("passport_dagster") as (name, _),
    ):
        yield database_url(name)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def app_db_url(request) -> str:
    """Each test using this runs on a sqlite file and on the PostgreSQL server (marked
    ``postgres``, so ``-m "not postgres"`` keeps the sqlite half)."""
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


@pytest.fixture
def local_resources(tmp_path, app_db_url) -> dict:
    return local_resources_for(app_db_url, tmp_path / "store")
