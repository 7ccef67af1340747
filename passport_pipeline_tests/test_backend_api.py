"""The app backend's three calls over HTTP: a real ``dagster-webserver`` and daemon on a
PostgreSQL app database, driven through ``dagster-graphql`` (``backend_api.PassportBackend``).

One deployment serves the module; each test uses its own month and users."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlparse

import pytest
import requests
from gql import Client, GraphQLRequest
from gql.transport.requests import RequestsHTTPTransport

from passport_pipeline.backend_api import (
    LAUNCH_MUTATION,
    MONTH_QUERY,
    BadUserIds,
    MonthAlreadyRunning,
    NoSuchRun,
    NotAllowed,
    PassportBackend,
    UnknownMonth,
    WebserverUnavailable,
)
from passport_pipeline.domain.month_status import MonthProgress
from passport_pipeline_tests.support.dataset import UserRow, cover_urls, write_dataset
from passport_pipeline_tests.support.deployment import Deployment, free_port
from passport_pipeline_tests.support.postgres import database_url, fresh_postgres_database
from passport_pipeline_tests.support.waiting import wait_for

# One webserver and daemon for the module (its fixture): all its tests on one xdist worker.
pytestmark = [pytest.mark.postgres, pytest.mark.e2e, pytest.mark.xdist_group("backend_api")]

RUN_TIMEOUT_S = 420  # a bound on a wait, not a speed check: the machine may be busy

REEXECUTE = """
mutation Reexecute($runId: String!) {
  launchRunReexecution(reexecutionParams: {parentRunId: $runId, strategy: FROM_FAILURE}) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
  }
}
"""


def day(month: int, day_of_month: int) -> datetime:
    return datetime(2026, month, day_of_month, 3, tzinfo=UTC)


USERS = [
    # October: a batch for users 1-3 (user 4 is not asked for)
    *(UserRow(user_id, visits=[(1, day(10, 5)), (5, day(10, 9))]) for user_id in (1, 2, 3, 4)),
    # September: a whole month
    UserRow(5, visits=[(2, day(9, 3))]),
    UserRow(6, visits=[(3, day(9, 20))]),
    # August: a month that fails on the store, then is re-executed from failure
    UserRow(7, visits=[(4, day(8, 1))]),
    UserRow(8, visits=[(1, day(8, 30))]),
]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(backend client, deployment, app database URL), with the webserver and daemon up."""
    with fresh_postgres_database("passport_backend") as (name, _):
        url = database_url(name)
        write_dataset(url, USERS)
        root = tmp_path_factory.mktemp("backend")
        # Quick step retries: the August run's store failures are retried before they count.
        deployment = Deployment.create(
            root, PASSPORT_DATABASE_URL=url, PASSPORT_STEP_RETRY_DELAY_S="0.1"
        )
        with deployment.webserver() as port:
            yield PassportBackend("127.0.0.1", port, timeout=60), deployment, url, port


def finish(backend: PassportBackend, month: str, run_id: str) -> list[MonthProgress]:
    """Every progress read while polling the run, the last one finished."""
    seen: list[MonthProgress] = []

    def finished() -> bool:
        seen.append(backend.progress(month, run_id))
        return seen[-1].finished

    wait_for(finished, f"the run {run_id} to finish", RUN_TIMEOUT_S, 1)
    return seen


def stored_file(url: str) -> Path:
    return Path(urlparse(url).path)


def test_a_batch_of_users_reaches_100_percent_and_their_passports_get_covers(served):
    backend, _, db_url, _ = served
    run_id = backend.launch_users("2026-10", [1, 2, 3, 999])

    seen = finish(backend, "2026-10", run_id)

    done = seen[-1]
    assert (done.status, done.run_id, done.run_ids) == ("SUCCESS", run_id, [run_id])
    assert (done.total, done.completed, done.failed, done.skipped) == (3, 3, 0, 0)
    assert (done.remaining, done.percent, done.in_flight) == (0, 100.0, 0)
    assert done.unknown_user_ids == [999]
    assert done.message == "done: 3 covered, 0 skipped, 0 failed of 3"
    assert done.elapsed_s > 0
    assert done.summary is not None
    assert (done.summary["month"], done.summary["generated"], done.summary["total"]) == (
        "2026-10",
        3,
        3,
    )
    percents = [p.percent for p in seen if p.percent is not None]
    assert percents == sorted(percents), "progress went backwards"
    covers = cover_urls(db_url)
    assert all(covers[user_id] and stored_file(covers[user_id]).is_file() for user_id in (1, 2, 3))
    assert covers[4] is None


def test_a_month_launches_once_and_a_second_launch_names_the_running_run(served):
    backend, _, db_url, _ = served
    run_id = backend.launch_month("2026-09")

    # The run is queued or running: the backend is told which, not given a second run.
    with pytest.raises(MonthAlreadyRunning) as running:
        backend.launch_month("2026-09")
    assert running.value.run_id == run_id
    with pytest.raises(MonthAlreadyRunning):
        backend.launch_users("2026-09", [5])

    done = finish(backend, "2026-09", run_id)[-1]
    assert (done.status, done.total, done.completed, done.percent) == ("SUCCESS", 2, 2, 100.0)
    covers = cover_urls(db_url)
    assert "/covers/2026-09/" in covers[5] and "/covers/2026-09/" in covers[6]


def test_a_month_failed_on_the_store_then_reexecuted_reads_as_one_batch(served):
    backend, deployment, db_url, port = served
    # A file where the month's folder of covers must go: every user's upload fails.
    blocker = deployment.root / "home" / "images" / "covers" / "2026-08"
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("not a folder")
    first = backend.launch_month("2026-08")

    failed = finish(backend, "2026-08", first)[-1]
    assert (failed.status, failed.total, failed.failed, failed.completed) == ("FAILURE", 2, 2, 0)
    assert failed.percent == 100.0 and failed.summary is None
    assert "re-execute from failure" in failed.message

    blocker.unlink()
    reader = Client(
        transport=RequestsHTTPTransport(url=f"http://127.0.0.1:{port}/graphql", timeout=60)
    )
    answer = reader.execute(GraphQLRequest(REEXECUTE, variable_values={"runId": first}))
    launched = answer["launchRunReexecution"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    second = launched["run"]["runId"]

    done = finish(backend, "2026-08", second)[-1]
    assert (done.status, done.run_id, done.run_ids) == ("SUCCESS", first, [first, second])
    assert (done.total, done.completed, done.failed, done.percent) == (2, 2, 0, 100.0)
    assert done.summary is not None and done.summary["failed"] == 0
    # The month's latest batch, and the batch named by its first run, are the same.
    assert backend.progress("2026-08").run_ids == backend.progress("2026-08", first).run_ids
    covers = cover_urls(db_url)
    assert all(stored_file(covers[user_id]).is_file() for user_id in (7, 8))


class Refuse(BaseHTTPRequestHandler):
    """What an authenticating proxy answers a request without valid credentials."""

    def do_POST(self):
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"error": "unauthorized"}')

    def log_message(self, *args):
        pass


@contextmanager
def refusing_proxy() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_errors_the_backend_can_act_on(served):
    backend, _, _, _ = served
    for month in ("2023-12", "2026-13", "2099-01", "October"):
        with pytest.raises(UnknownMonth):
            backend.launch_month(month)
        with pytest.raises(UnknownMonth):
            backend.progress(month)
    with pytest.raises(BadUserIds):
        backend.launch_users("2026-06", [])
    with pytest.raises(BadUserIds, match="refused"):
        backend.launch_users("2026-06", ["seven"])
    with pytest.raises(NoSuchRun):
        backend.progress("2026-06")

    with refusing_proxy() as proxy_port, pytest.raises(NotAllowed):
        PassportBackend("127.0.0.1", proxy_port, timeout=10).progress("2026-10")

    nobody = PassportBackend("127.0.0.1", free_port(), timeout=10)
    with pytest.raises(WebserverUnavailable):
        nobody.progress("2026-10")
    with pytest.raises(WebserverUnavailable):
        nobody.launch_month("2026-10")


def test_the_readme_documents_work_over_plain_http(served):
    """What a backend in another language sends: a JSON POST of a document and variables."""
    backend, _, db_url, port = served
    url = f"http://127.0.0.1:{port}/graphql"
    execution_params = {
        "selector": {
            "repositoryLocationName": "passport_pipeline",
            "repositoryName": "__repository__",
            "jobName": "monthly_passport_covers",
        },
        "runConfigData": {"ops": {"passport_covers": {"config": {"user_ids": [5]}}}},
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": "2026-07"}]},
    }

    def post(query: str, variables: dict) -> dict:
        answer = requests.post(url, json={"query": query, "variables": variables}, timeout=60)
        assert answer.status_code == 200, answer.text
        assert "errors" not in answer.json(), answer.json()
        return answer.json()["data"]

    bad = {
        **execution_params,
        "runConfigData": {"ops": {"passport_covers": {"config": {"user_ids": ["x"]}}}},
    }
    refused = post(LAUNCH_MUTATION, {"executionParams": bad})["launchRun"]
    assert refused["__typename"] == "RunConfigValidationInvalid"

    launched = post(LAUNCH_MUTATION, {"executionParams": execution_params})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    month = post(MONTH_QUERY, {"month": "2026-07"})
    assert [run["runId"] for run in month["runsOrError"]["results"]] == [run_id]
    assert "2026-07" in month["assetNodeOrError"]["partitionKeys"]

    # User 5 visited nobody in July: the user is skipped, and the summary says so.
    done = finish(backend, "2026-07", run_id)[-1]
    assert (done.status, done.total, done.completed, done.skipped) == ("SUCCESS", 1, 0, 1)
    assert done.summary["skip_reasons"] == {"no visits in 2026-07": 1}
    assert "/covers/2026-07/" not in (cover_urls(db_url)[5] or "")


def test_a_month_launched_from_the_asset_page_is_the_backends_too(served):
    """The asset page launches Dagster's implicit ``__ASSET_JOB``, not the job: the backend reads
    that run as the month's (and would refuse a second launch beside it)."""
    backend, _, _, port = served
    asset_page_launch = {
        "selector": {
            "repositoryLocationName": "passport_pipeline",
            "repositoryName": "__repository__",
            "jobName": "__ASSET_JOB",
            "assetSelection": [{"path": ["passport_covers"]}],
        },
        "runConfigData": {"ops": {"passport_covers": {"config": {"user_ids": [6]}}}},
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": "2026-06"}]},
    }
    answer = requests.post(
        f"http://127.0.0.1:{port}/graphql",
        json={"query": LAUNCH_MUTATION, "variables": {"executionParams": asset_page_launch}},
        timeout=60,
    ).json()
    launched = answer["data"]["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", answer
    run_id = launched["run"]["runId"]

    done = finish(backend, "2026-06", run_id)[-1]
    assert (done.status, done.run_id, done.total, done.skipped) == ("SUCCESS", run_id, 1, 1)
    assert backend.progress("2026-06").run_id == run_id  # the month's latest, found by month
