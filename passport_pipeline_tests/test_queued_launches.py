"""One run of a month at a time through the run queue: the job page, the asset page (Dagster's
``__ASSET_JOB``, without the lane tag) and an asset backfill of the same month, launched over
GraphQL at once, on ``dagster-webserver`` + ``dagster-daemon``. Paid calls are counted at the
Gemini fake."""

from __future__ import annotations

import itertools

import pytest
from dagster import DagsterRunStatus, RunsFilter

from passport_pipeline_tests.support.dataset import UserRow, cover_urls, october, write_dataset
from passport_pipeline_tests.support.deployment import Deployment
from passport_pipeline_tests.support.fake_gemini import FakeGemini
from passport_pipeline_tests.support.ui_graphql import (
    LAUNCH_BACKFILL,
    LAUNCH_RUN,
    REPOSITORY,
    graphql,
)
from passport_pipeline_tests.support.waiting import wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]
API_KEY = "AIzaTEST-queued-key-00011122233344"
USERS = [UserRow(i, title=f"Trip {i:03d}", visits=[(1 + i % 5, october(9))]) for i in range(1, 9)]
TIMEOUT_S = 420  # a bound on a wait, not a speed check
MONTH_TAG = [{"key": "dagster/partition", "value": "2026-10"}]


def launch(port: int, job_name: str, asset_selection: list | None = None) -> str:
    params = {
        "selector": {**REPOSITORY, "jobName": job_name},
        "runConfigData": {},
        "executionMetadata": {"tags": MONTH_TAG},
    }
    if asset_selection is not None:
        params["selector"]["assetSelection"] = asset_selection
    result = graphql(port, LAUNCH_RUN, {"executionParams": params})["launchRun"]
    assert result["__typename"] == "LaunchRunSuccess", result
    return result["run"]["runId"]


def test_job_page_asset_page_and_backfill_at_once_run_one_after_another_paying_once(
    tmp_path, postgres_url
):
    write_dataset(postgres_url, USERS)
    with FakeGemini(api_keys=[API_KEY], latency_s=0.5) as gemini:
        deployment = Deployment.with_gemini(tmp_path, postgres_url, gemini.base_url, API_KEY)
        deployment.set_pool_limit(2)  # the month takes a few seconds: the launches overlap
        with deployment.webserver() as port:
            covers = [{"path": ["passport_covers"]}]
            launch(port, "monthly_passport_covers")
            launch(port, "__ASSET_JOB", covers)
            backfill = graphql(
                port,
                LAUNCH_BACKFILL,
                {"backfillParams": {"assetSelection": covers, "partitionNames": ["2026-10"]}},
            )["launchPartitionBackfill"]
            assert backfill["__typename"] == "LaunchBackfillSuccess", backfill

            def all_ended():
                with deployment.instance() as instance:
                    records = instance.get_run_records(
                        RunsFilter(tags={"dagster/partition": "2026-10"})
                    )
                    done = instance.get_backfill(backfill["backfillId"]).status.value != "REQUESTED"
                return len(records) == 3 and done and all(r.end_time for r in records) and records

            records = wait_for(all_ended, "the launches and the backfill to end", TIMEOUT_S, 1)

    # Every launch ran, one after another: no two runs of the month overlapped.
    assert {r.dagster_run.status for r in records} == {DagsterRunStatus.SUCCESS}
    spans = sorted((r.start_time, r.end_time) for r in records)
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end, spans
    assert all(cover_urls(postgres_url).values())
    assert gemini.generate_requests == len(USERS)
