"""At most one run of a month at a time, whatever launched it.

Two layers, because runs reach the instance by two roads:

- **The run queue** (``dagster.yaml``, ``concurrency.runs.tag_concurrency_limits``): a limit of
  1 per distinct ``dagster/partition`` value. It holds every queued launch — the job page, the
  asset page (Dagster's ``__ASSET_JOB``, which lacks the ``passport/lane`` tag), backfills, the
  schedule, GraphQL, re-executions from the UI — so a second launch of a running month waits as
  ``QUEUED`` behind it and the UI says which limit holds it.
- **This check, in the run itself** before any step runs (``execution/executor.py``) and again in
  the month's first step (``covers/plan.py``, for in-process runs on Dagster's own executor). It
  holds what never passes the queue: ``dagster job execute``, ``execute_in_process``,
  ``cli.reexecute``, and several daemons or coordinators racing. A run of a month goes ahead only
  if no other run of the month that has not finished was created before it (ties broken by run
  id). Every run decides from the same stored facts — the runs' creation order and statuses —
  so of any set of overlapping runs exactly the oldest proceeds, whichever checks first; the
  others stop before any step, naming it.

Why not a lock row: Dagster's instance offers no public lock, a lock held by a killed process
must be freed by someone, and the run records already say which runs are alive (a killed run
is marked failed by the dead-run sensor or Dagster's code server, which releases the month).
A run refused here is tagged ``passport/refused`` (``month_runs.refused_tag``: the older run,
keyed by the refused run's own id because a re-execution copies its parent's tags), so the
month's views, sensors and alerts leave it out.
"""

from __future__ import annotations

from dagster import DagsterInstance, DagsterRun, DagsterRunStatus, RunsFilter

from passport_pipeline.covers.names import PARTITION_TAG, is_covers_run, is_refused
from passport_pipeline.domain.month_runs import NOT_BEGUN, is_finished, refused_tag

UNFINISHED_STATUSES = [status for status in DagsterRunStatus if not is_finished(status.value)]


class MonthAlreadyRunning(Exception):
    """Another run of the month was created first and has not finished: this one must not run."""

    def __init__(self, month: str, run_id: str, ahead: DagsterRun):
        self.ahead_run_id = ahead.run_id
        super().__init__(
            f"refused: run {ahead.run_id} of {month} was launched before this run and is "
            f"{ahead.status.value}; one run of a month at a time, so this run stopped before any "
            f"step and paid for nothing. {_how_to_clear(ahead)}"
        )


def _how_to_clear(ahead: DagsterRun) -> str:
    release = f"python -m passport_pipeline.cli.release {ahead.run_id}"
    if ahead.status.value in NOT_BEGUN:
        # A run no daemon dequeues (none running, or its queue is paused), or one whose creating
        # process died before it started, holds its month until someone clears it.
        return (
            f"Run {ahead.run_id} has not started: if no dagster-daemon will start it (or the "
            f"process that created it is gone), clear it with Terminate on its run page or "
            f"`{release}` (marks it canceled), then launch again."
        )
    return (
        f"Follow run {ahead.run_id}; when it has ended, launch or re-execute the month again if "
        f"users are left (stored covers are reused). If its process is gone, `{release}` marks "
        f"it failed."
    )


def month_runs_in_progress(instance: DagsterInstance, month: str) -> list[DagsterRun]:
    """The month's covers runs that have not finished (queued ones included), oldest first,
    leaving out runs already refused for another."""
    records = instance.get_run_records(
        RunsFilter(tags={PARTITION_TAG: month}, statuses=UNFINISHED_STATUSES)
    )
    records = sorted(
        records, key=lambda record: (record.create_timestamp, record.dagster_run.run_id)
    )
    return [record.dagster_run for record in records if is_covers_run(record.dagster_run)]


def run_ahead(instance: DagsterInstance, run: DagsterRun) -> DagsterRun | None:
    """The unfinished run of ``run``'s month that goes before it, if any (None: go ahead)."""
    month = run.tags.get(PARTITION_TAG)
    if not month:
        return None  # the plan refuses a run without a month
    in_progress = month_runs_in_progress(instance, month)
    ids = [other.run_id for other in in_progress]
    if run.run_id not in ids:
        # Not unfinished as stored (it is): compare it as the newest, so it never jumps the line.
        return in_progress[0] if in_progress else None
    position = ids.index(run.run_id)
    return in_progress[0] if position > 0 else None


def claim_month(instance: DagsterInstance, run_id: str) -> None:
    """Go ahead, or tag the run refused and raise ``MonthAlreadyRunning``."""
    run = instance.get_run_by_id(run_id)
    if run is None or is_refused(run):
        return
    ahead = run_ahead(instance, run)
    if ahead is None:
        return
    instance.add_run_tags(run_id, refused_tag(run_id, ahead.run_id))
    raise MonthAlreadyRunning(run.tags[PARTITION_TAG], run_id, ahead)
