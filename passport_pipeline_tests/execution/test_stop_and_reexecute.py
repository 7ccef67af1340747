"""A month stopped mid-way, in process on the default (threads) executor, then finished by
Re-execute → From failure with every user paid once (counted at the Gemini fake):

- an operator's Terminate: the run ends CANCELED naming its failed steps, without a stack trace;
- an interrupt nobody asked for (a daemon or code server restarted under its run worker, which
  signals it): the run ends FAILURE, and the re-execution is what a backfill's retry (the run
  retry daemon's FROM_FAILURE strategy) or the UI's button makes of it.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator

import pytest
from dagster import (
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    Definitions,
    JobDefinition,
    ReexecutionOptions,
    build_reconstructable_job,
    execute_job,
)

from passport_pipeline.covers.asset import build_covers_asset, covers_job
from passport_pipeline.covers.names import JOB_NAME, PARTITION_TAG
from passport_pipeline.covers.policies import cover_retry_policy
from passport_pipeline.definitions import COVERS_RUN_HOOKS
from passport_pipeline.execution.executor import thread_executor_def
from passport_pipeline.resources.gemini import GeminiImageModel
from passport_pipeline_tests.support.dataset import UserRow, cover_urls, october, write_dataset
from passport_pipeline_tests.support.fake_gemini import FakeGemini
from passport_pipeline_tests.support.gemini_deployment import GEMINI_TEST_KEY, gemini_fake
from passport_pipeline_tests.support.launch import local_resources_for
from passport_pipeline_tests.support.waiting import wait_for

USERS = [UserRow(i, title=f"Trip {i:03d}", visits=[(1 + i % 5, october(9))]) for i in range(1, 5)]
MONTH = {PARTITION_TAG: "2026-10"}


def one_at_a_time_job(db_url: str, store_root: str, gemini_url: str) -> JobDefinition:
    """The covers job on the production executor (threads, one step at a time) and hooks."""
    resources = local_resources_for(db_url, store_root)
    resources["image_model"] = GeminiImageModel(api_key=GEMINI_TEST_KEY, base_url=gemini_url)
    return Definitions(
        assets=[build_covers_asset(cover_retry_policy(delay_s=0.05))],
        jobs=[covers_job],
        resources=resources,
        executor=thread_executor_def(COVERS_RUN_HOOKS).configured({"max_concurrent": 1}),
    ).resolve_job_def(JOB_NAME)


@pytest.fixture
def gemini() -> Iterator[FakeGemini]:
    yield from gemini_fake(latency_s=0.5)


def stop_while_drawing(
    instance: DagsterInstance, gemini: FakeGemini, title: str, terminate: bool
) -> None:
    """Once ``title`` is being drawn, interrupt this process, as the run worker's signal does;
    for the UI's Terminate, first mark the run CANCELING."""
    wait_for(lambda: gemini.in_flight_since(title) is not None, f"{title} drawn", 60, 0.02)
    [run] = instance.get_runs(limit=1)
    if terminate:
        instance.report_run_canceling(run)
    os.kill(os.getpid(), signal.SIGINT)


@pytest.mark.parametrize(
    ("terminate", "ends"), [(True, DagsterRunStatus.CANCELED), (False, DagsterRunStatus.FAILURE)]
)
def test_a_stopped_month_is_finished_from_failure_paying_each_user_once(
    tmp_path, sqlite_url, gemini, instance, terminate, ends
):
    write_dataset(sqlite_url, USERS)
    job = build_reconstructable_job(
        __name__,
        one_at_a_time_job.__name__,
        reconstructable_args=(sqlite_url, str(tmp_path / "store"), gemini.base_url),
    )
    stopper = threading.Thread(
        target=stop_while_drawing, args=(instance, gemini, "Trip 002", terminate)
    )
    stopper.start()
    with execute_job(job, instance=instance, tags=MONTH, raise_on_error=False) as parent:
        pass
    stopper.join()

    assert instance.get_run_by_id(parent.run_id).status is ends
    if terminate:
        [canceled] = instance.all_logs(parent.run_id, of_type=DagsterEventType.RUN_CANCELED)
        assert canceled.dagster_event.event_specific_data.error is None  # no stack trace
        assert "Run was canceled. Failed steps:" in canceled.dagster_event.message
        assert "generate_cover[user_4]" in canceled.dagster_event.message  # never started
    # The call in flight finished and its cover was stored; the last user never started.
    covered = {user for user, url in cover_urls(sqlite_url).items() if url}
    assert {1, 2} <= covered and 4 not in covered

    options = ReexecutionOptions.from_failure(parent.run_id, instance)
    with execute_job(job, instance=instance, tags=MONTH, reexecution_options=options) as again:
        assert again.success
    assert all(cover_urls(sqlite_url).values())
    assert [gemini.requests_for(user.title) for user in USERS] == [1, 1, 1, 1]
