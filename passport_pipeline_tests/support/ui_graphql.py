"""The UI's own GraphQL calls, as its buttons send them, for tests that drive a webserver.

The shapes are the UI's (Dagster 1.13.27's webapp bundle): the job page's Launch, Re-execute →
From failure on a run, the job page's backfill dialog (a job backfill: the job's partition set
*and* the asset selection) and the backfill page's Re-execute → From failure.
"""

from __future__ import annotations

import requests

from passport_pipeline.covers.names import JOB_NAME

REPOSITORY = {"repositoryLocationName": "passport_pipeline", "repositoryName": "__repository__"}
COVERS = [{"path": ["passport_covers"]}]

LAUNCH_RUN = """
mutation($executionParams: ExecutionParams!) {
  launchRun(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
  }
}
"""
REEXECUTE_RUN = """
mutation($runId: String!) {
  launchRunReexecution(reexecutionParams: {parentRunId: $runId, strategy: FROM_FAILURE}) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
  }
}
"""
LAUNCH_BACKFILL = """
mutation($backfillParams: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $backfillParams) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
  }
}
"""
REEXECUTE_BACKFILL = """
mutation($backfillId: String!) {
  reexecutePartitionBackfill(
    reexecutionParams: {parentRunId: $backfillId, strategy: FROM_FAILURE}
  ) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
  }
}
"""


def graphql_body(port: int, query: str, variables: dict) -> dict:
    """The webserver's whole answer (``data``, ``errors``), with its HTTP ``status``."""
    answer = requests.post(
        f"http://127.0.0.1:{port}/graphql",
        json={"query": query, "variables": variables},
        timeout=60,
    )
    return {**answer.json(), "status": answer.status_code}


def graphql(port: int, query: str, variables: dict) -> dict:
    body = graphql_body(port, query, variables)
    assert "errors" not in body, body["errors"]
    return body["data"]


def _succeeded(result: dict, success: str) -> dict:
    assert result["__typename"] == success, result
    return result


def launch_month(port: int, month: str) -> str:
    """The job page's Launch of one month (queued; the daemon starts it): the run's id."""
    params = {
        "selector": {**REPOSITORY, "jobName": JOB_NAME},
        "runConfigData": {},
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": month}]},
    }
    result = graphql(port, LAUNCH_RUN, {"executionParams": params})["launchRun"]
    return _succeeded(result, "LaunchRunSuccess")["run"]["runId"]


def reexecute_from_failure_answer(port: int, run_id: str) -> dict:
    """A run page's Re-execute → From failure: the webserver's whole answer, as it is."""
    return graphql_body(port, REEXECUTE_RUN, {"runId": run_id})


def reexecute_from_failure(port: int, run_id: str) -> str:
    """A run page's Re-execute → From failure: the new run's id."""
    result = graphql(port, REEXECUTE_RUN, {"runId": run_id})["launchRunReexecution"]
    return _succeeded(result, "LaunchRunSuccess")["run"]["runId"]


def backfill_from_job_page(port: int, months: list[str]) -> str:
    """The job page's Materialize… → Launch backfill, as the UI sends it for a job that is not
    Dagster's hidden asset job: a job backfill over the job's partition set: its id."""
    params = {
        "tags": [],
        "assetSelection": COVERS,
        "partitionNames": months,
        "fromFailure": False,
        "selector": {
            "partitionSetName": f"{JOB_NAME}_partition_set",
            "repositorySelector": REPOSITORY,
        },
    }
    result = graphql(port, LAUNCH_BACKFILL, {"backfillParams": params})
    return _succeeded(result["launchPartitionBackfill"], "LaunchBackfillSuccess")["backfillId"]


def reexecute_backfill_from_failure(port: int, backfill_id: str) -> str:
    """The backfill page's Re-execute → From failure: the new backfill's id."""
    result = graphql(port, REEXECUTE_BACKFILL, {"backfillId": backfill_id})
    return _succeeded(result["reexecutePartitionBackfill"], "LaunchBackfillSuccess")["backfillId"]
