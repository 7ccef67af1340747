"""The app backend's three calls, over the GraphQL API of ``dagster-webserver``.

    backend = PassportBackend("dagster.internal", 3000)
    run_id = backend.launch_users("2026-10", [7, 8, 9])   # a launch for a list of users
    run_id = backend.launch_month("2026-10")              # the whole month
    progress = backend.progress("2026-10", run_id)        # that launch, across its re-executions

Launching goes through Dagster's maintained client (``dagster_graphql``); progress is one
GraphQL query (``MONTH_QUERY``) sent with ``gql``, the library that client is built on. Each
error the backend can act on is its own exception type. No server of ours: the README gives the
same documents for callers in other languages.
"""

from __future__ import annotations

import json
import time

import requests
from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError
from gql import Client, GraphQLRequest
from gql.transport.exceptions import (
    TransportConnectionFailed,
    TransportError,
    TransportServerError,
)
from gql.transport.requests import RequestsHTTPTransport

from passport_pipeline.covers.events import PARTIAL_RUN_STATUS
from passport_pipeline.covers.names import COVERS_ASSET, JOB_NAME, PARTITION_TAG, user_of_step
from passport_pipeline.domain.month_runs import is_finished, is_refused
from passport_pipeline.domain.month_status import (
    MonthProgress,
    RunView,
    StepStat,
    fold_month,
    run_group,
)

# Everything progress needs, in one request: the month's runs (each with its tags and step
# stats), whether the month is a partition at all, and the month's recorded summary. Every run
# of the partition is fetched and kept by ``month_runs.runs_the_covers``, as everywhere else:
# a month launched from the asset's page runs as ``__ASSET_JOB``, not as the job.
MONTH_QUERY = """
fragment SummaryEntry on MetadataEntry {
  label
  ... on IntMetadataEntry { intValue }
  ... on FloatMetadataEntry { floatValue }
  ... on TextMetadataEntry { text }
  ... on JsonMetadataEntry { jsonString }
}

query PassportMonth($month: String!) {
  runsOrError(filter: {tags: [{key: "dagster/partition", value: $month}]}) {
    __typename
    ... on Runs {
      results {
        runId rootRunId status creationTime startTime endTime jobName
        assetSelection { path }
        tags { key value }
        stepStats { stepKey status startTime endTime }
      }
    }
    ... on PythonError { message }
  }
  assetNodeOrError(assetKey: {path: ["passport_covers"]}) {
    __typename
    ... on AssetNode {
      partitionKeys
      assetMaterializations(partitions: [$month], limit: 1) {
        runId
        metadataEntries { ...SummaryEntry }
      }
      assetObservations(partitions: [$month], limit: 50) {
        runId
        metadataEntries { ...SummaryEntry }
      }
    }
  }
}
"""


# The launch, for callers in other languages (the Python client sends its own equivalent,
# ``GraphQLClientSubmitRun``). Variables: README, "The app backend's three calls".
LAUNCH_MUTATION = """
mutation LaunchCovers($executionParams: ExecutionParams!) {
  launchRun(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on PipelineNotFoundError { message }
    ... on UnauthorizedError { message }
    ... on PythonError { message }
  }
}
"""


class BackendError(Exception):
    """An answer the backend can act on; ``str()`` says what to do."""


class WebserverUnavailable(BackendError):
    """No answer from the webserver (down, unreachable, timed out, or a 5xx): retry later."""


class NotAllowed(BackendError):
    """The proxy in front of the webserver refused the request (401/403): check credentials."""


class UnknownMonth(BackendError):
    """Not a month the job covers: not ``YYYY-MM``, before the first month, or not over yet."""


class MonthAlreadyRunning(BackendError):
    """A run of this month is queued or running; follow it instead of starting another."""

    def __init__(self, month: str, run_id: str, status: str):
        super().__init__(f"{month} already has a run {status.lower()}: {run_id}")
        self.run_id, self.status = run_id, status


class BadUserIds(BackendError):
    """The user ids are not a non-empty list of integers (the webserver's config check)."""


class NoSuchRun(BackendError):
    """No run of that month (with that id) exists."""


class PassportBackend:
    """The three calls. ``timeout`` bounds every HTTP request, in seconds; ``headers`` carry
    the credentials the proxy in front of the webserver expects (README, production);
    ``location`` is the code location's name in the deployment's workspace."""

    def __init__(
        self,
        hostname: str,
        port: int | None = None,
        *,
        use_https: bool = False,
        timeout: int = 30,
        headers: dict[str, str] | None = None,
        location: str = "passport_pipeline",
        repository: str = "__repository__",
    ):
        # Named, so that a launch is one request (no lookup query for a proxy to allow).
        self._location, self._repository = location, repository
        self._launcher = DagsterGraphQLClient(
            hostname, port, use_https=use_https, timeout=timeout, headers=headers
        )
        address = f"{hostname}:{port}" if port else hostname
        url = f"{'https' if use_https else 'http'}://{address}/graphql"
        self._reader = Client(
            transport=RequestsHTTPTransport(url=url, timeout=timeout, headers=headers, retries=0)
        )

    def launch_month(self, month: str) -> str:
        """Start the whole month; returns the run id (the run may wait in the queue)."""
        return self._launch(month, {})

    def launch_users(self, month: str, user_ids: list[int]) -> str:
        """Launch a run for these users' covers of ``month``; ids that name no user are
        skipped by the run and listed in its progress (``unknown_user_ids``)."""
        if not user_ids:
            # An empty list is a run for nobody; the webserver checks the ids are integers.
            raise BadUserIds("no user ids: give at least one, or launch the whole month")
        config = {"ops": {"passport_covers": {"config": {"user_ids": list(user_ids)}}}}
        return self._launch(month, config)

    def progress(self, month: str, run_id: str | None = None) -> MonthProgress:
        """The run's progress across its re-executions (default: the month's latest run)."""
        runs, partition_keys, summaries = self._month(month)
        if month not in partition_keys:
            raise UnknownMonth(_unknown_month(month, partition_keys))
        group = run_group(runs, run_id)
        if not group:
            named = f"run {run_id}" if run_id else "run"
            raise NoSuchRun(f"no {named} of {JOB_NAME} for {month}")
        group_ids = {run.run_id for run in group}
        own_summary = next((one for one in summaries if one["run_id"] in group_ids), None)
        return fold_month(month, group, own_summary, time.time())

    def _launch(self, month: str, run_config: dict) -> str:
        runs, partition_keys, _ = self._month(month)
        if month not in partition_keys:
            raise UnknownMonth(_unknown_month(month, partition_keys))
        # Check then launch is not atomic: two callers at once both get a run. The instance's
        # queue still runs them one after another, and the second reuses the first's covers.
        active = [
            run
            for run in runs
            if not is_finished(run.status) and not is_refused(run.run_id, run.tags)
        ]
        if active:
            latest = max(active, key=lambda run: run.creation_time)
            raise MonthAlreadyRunning(month, latest.run_id, latest.status)
        try:
            return self._launcher.submit_job_execution(
                JOB_NAME,
                repository_location_name=self._location,
                repository_name=self._repository,
                run_config=run_config,
                tags={PARTITION_TAG: month},
            )
        except DagsterGraphQLClientError as error:
            if isinstance(error.__cause__, requests.RequestException | TransportError):
                raise _transport_error(error.__cause__) from error
            kind = error.args[0] if error.args else ""
            if kind == "RunConfigValidationInvalid":
                detail = "; ".join(item["message"] for item in error.args[1])
                raise BadUserIds(f"the run config was refused: {detail}") from error
            raise

    def _month(self, month: str) -> tuple[list[RunView], list[str], list[dict]]:
        """The month's runs, its partition keys, and its summaries, newest first: the month's
        materialization, then the observations of runs of listed users (which do not mark the
        month done)."""
        try:
            data = self._reader.execute(
                GraphQLRequest(MONTH_QUERY, variable_values={"month": month})
            )
        except (requests.RequestException, TransportError) as error:
            raise _transport_error(error) from error
        runs_answer, node = data["runsOrError"], data["assetNodeOrError"]
        if runs_answer["__typename"] != "Runs" or node["__typename"] != "AssetNode":
            raise BackendError(f"unexpected answer: {runs_answer} {node['__typename']}")
        views = (_run_view(run) for run in runs_answer["results"])
        runs = [run for run in views if run.runs_the_covers]
        summaries = [_summary(one) for one in node["assetMaterializations"]]
        for observation in node["assetObservations"]:
            values = _summary(observation)
            if values.get("run_status") == PARTIAL_RUN_STATUS:
                summaries.append(values)
        return runs, node["partitionKeys"], summaries


def _run_view(run: dict) -> RunView:
    return RunView(
        run_id=run["runId"],
        root_run_id=run["rootRunId"] or run["runId"],
        status=run["status"],
        creation_time=run["creationTime"],
        start_time=run["startTime"],
        end_time=run["endTime"],
        tags={tag["key"]: tag["value"] for tag in run["tags"]},
        job_name=run["jobName"],
        asset_selection=["/".join(key["path"]) for key in run["assetSelection"] or ()],
        step_stats=[
            StepStat(user, stat["status"], stat["startTime"], stat["endTime"])
            for stat in run["stepStats"]
            if (user := user_of_step(stat["stepKey"])) is not None
        ],
    )


def _summary(materialization: dict) -> dict:
    values: dict = {"run_id": materialization["runId"]}
    for entry in materialization["metadataEntries"]:
        for field in ("intValue", "floatValue", "text"):
            if field in entry:
                values[entry["label"]] = entry[field]
        if "jsonString" in entry:
            values[entry["label"]] = json.loads(entry["jsonString"])
    return values


def _unknown_month(month: str, partition_keys: list[str]) -> str:
    first, last = (partition_keys[0], partition_keys[-1]) if partition_keys else ("?", "?")
    return f"{month!r} is not a month of {COVERS_ASSET}: months run from {first} to {last}"


def _transport_error(error: Exception) -> BackendError:
    code = error.code if isinstance(error, TransportServerError) else None
    if code in (401, 403):
        return NotAllowed(f"refused by the proxy in front of the webserver ({code}): {error}")
    unreachable = (requests.RequestException, TransportConnectionFailed)
    if isinstance(error, unreachable) or (code or 0) >= 500:
        return WebserverUnavailable(f"the Dagster webserver did not answer: {error}")
    return BackendError(f"not a GraphQL answer: {error}")
