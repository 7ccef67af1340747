"""A month halted by Gemini's daily quota finishes by itself: the halt is recorded with its
resume time, and a sensor re-executes the run from failure once the quota is back.

- **The halt** (``record_quota_halt``, from the user's step that got the per-day 429): an
  observation of the month in the instance's event log naming the run, when it halted and
  when the quota is back (``domain/quota_days.py``: Google's ``RetryInfo`` if given, else a
  minute past midnight Pacific). Not a run tag: a re-execution copies its parent's tags.
- **The sensor** (``<job>_quota_resumes``, every 5 minutes): for each month whose newest run
  halted on the quota and has ended, decides from (the halt, now, the month's resumes so far)
  and, once the time has come, re-executes the run from failure through
  ``python -m passport_pipeline.cli.reexecute`` — the path a person takes: it records the
  never-started users first, and the new run passes the month's one-run-at-a-time check
  (``one_run.py``) before any step, so no user is paid twice. Each resume is recorded on the
  month; after ``PASSPORT_QUOTA_RESUME_DAYS`` of them the sensor stops, and the halt alert
  says a person is needed.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from dagster import (
    AssetKey,
    AssetRecordsFilter,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    DefaultSensorStatus,
    OpExecutionContext,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from passport_pipeline.covers import events
from passport_pipeline.covers.names import COVERS_ASSET, PARTITION_TAG
from passport_pipeline.covers.progress import latest_run_id
from passport_pipeline.domain.months import Month
from passport_pipeline.domain.quota_days import (
    Action,
    Decision,
    QuotaHalt,
    decide,
    resume_time,
)

TICK_S = 300
LOOKBACK_S = 40 * 24 * 3600  # the halts and resumes that count: about a month's
NO_RUN_AFTER_S = 900  # a launched re-execution creates its run within seconds
# Re-executes one run from failure, out of the sensor's process (a month outlasts a tick).
Launch = Callable[[DagsterInstance, str], None]
# The command a person runs (named, not imported: the CLI sits above the covers).
REEXECUTE_COMMAND = "passport_pipeline.cli.reexecute"
_LAUNCHED: list[subprocess.Popen] = []  # re-executions started by launch_detached


def record_quota_halt(context: OpExecutionContext, month: str, retry_delay_s: float | None) -> None:
    """The run halts on the daily quota: record when its month may go on."""
    halted_at = time.time()
    resume_at = resume_time(halted_at, retry_delay_s)
    context.log_event(events.quota_halt(month, context.run_id, halted_at, resume_at))


def quota_facts(
    instance: DagsterInstance, month: str | None, since: float
) -> tuple[dict[str, QuotaHalt], dict[str, dict[str, float]]]:
    """The quota halts by run (the latest resume time of each) and the resumed runs by month
    (run id → when the sensor launched its re-execution), recorded after ``since`` (of one
    month, or of all)."""
    halts: dict[str, QuotaHalt] = {}
    resumed: dict[str, dict[str, float]] = {}
    for partition, values in _observations(instance, month, since):
        if events.QUOTA_HALT_KEY in values:
            run_id = str(values[events.QUOTA_HALT_KEY])
            halt = QuotaHalt(
                partition, run_id, float(values["halted_at"]), float(values["resume_at"])
            )
            known = halts.get(run_id)
            if known is None or halt.resume_at > known.resume_at:
                halts[run_id] = halt
        elif events.QUOTA_RESUME_KEY in values:
            launched = float(values.get("resumed_at", 0.0))
            resumed.setdefault(partition, {})[str(values[events.QUOTA_RESUME_KEY])] = launched
    return halts, resumed


def run_quota_decision(
    instance: DagsterInstance, run: DagsterRun, now: float, most: int
) -> Decision | None:
    """What becomes of a run halted on the daily quota (None: it was not): for its alert."""
    month = run.tags.get(PARTITION_TAG)
    if not month:
        return None
    halts, resumed = quota_facts(instance, month, now - LOOKBACK_S)
    halt = halts.get(run.run_id)
    if halt is None:
        return None
    return decide(halt, now, len(set(resumed.get(month, {})) - {run.run_id}), most)


def due_decisions(
    instance: DagsterInstance, now: float, most: int
) -> tuple[list[Decision], list[str]]:
    """For each month whose newest run halted on the quota, has ended, and was not resumed
    yet: the decision at ``now``; and a line for each resume launched that made no run."""
    halts, resumed = quota_facts(instance, None, now - LOOKBACK_S)
    decisions, stuck = [], []
    for halt in sorted(halts.values(), key=lambda h: h.halted_at):
        done = resumed.get(halt.month, {})
        if latest_run_id(instance, Month.parse(halt.month)) != halt.run_id:
            continue  # superseded: resumed, or a person re-executed or launched the month
        if halt.run_id in done:
            if now - done[halt.run_id] > NO_RUN_AFTER_S:
                stuck.append(
                    f"{halt.month}: the automatic re-execution of run {halt.run_id} made no "
                    f"run; see quota_resumes/{halt.run_id}.log in the Dagster instance's "
                    "directory, and re-execute the run from failure"
                )
            continue
        run = instance.get_run_by_id(halt.run_id)
        if run is None or run.status is not DagsterRunStatus.FAILURE:
            continue  # still ending (its steps are stopping), or it ended otherwise
        decisions.append(decide(halt, now, len(done), most))
    return decisions, stuck


def launch_detached(instance: DagsterInstance, run_id: str) -> None:
    """Re-execute ``run_id`` from failure with the operators' command
    (``python -m passport_pipeline.cli.reexecute``), in a process of its own that outlives the
    sensor's; its output goes to ``quota_resumes/<run id>.log`` in the instance's directory."""
    logs = Path(instance.root_directory) / "quota_resumes"
    logs.mkdir(parents=True, exist_ok=True)
    # Kept, and polled at the next launch, so that an ended one is reaped, not left a zombie.
    _LAUNCHED[:] = [process for process in _LAUNCHED if process.poll() is None]
    with open(logs / f"{run_id}.log", "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", REEXECUTE_COMMAND, run_id],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # not stopped with the sensor's process
        )
    _LAUNCHED.append(process)


def quota_resume_sensor(
    job_name: str,
    most: int,
    launch: Launch = launch_detached,
    clock: Callable[[], float] = time.time,
) -> SensorDefinition:
    """The sensor that resumes quota-halted months (``clock``: seconds since the epoch)."""

    @sensor(
        name=f"{job_name}_quota_resumes",
        minimum_interval_seconds=TICK_S,
        default_status=DefaultSensorStatus.RUNNING,
        description=(
            "Re-executes from failure a month's run halted by Gemini's daily quota once the "
            f"quota has reset (midnight Pacific, or Google's retryDelay); at most {most} "
            "times a month, then a person is needed."
        ),
    )
    def resume_quota_halted_months(context: SensorEvaluationContext):
        """Resume each month whose quota is back; say which wait and which need a person."""
        now = clock()
        decisions, lines = due_decisions(context.instance, now, most)
        for line in lines:
            context.log.error(line)
        for decision in decisions:
            if decision.action is Action.RESUME:
                launch(context.instance, decision.halt.run_id)
                context.instance.report_runless_asset_event(
                    events.quota_resume(
                        decision.halt.month, decision.halt.run_id, decision.resume_number, most, now
                    )
                )
            lines.append(decision.describe())
        return SkipReason("; ".join(lines) or "no month is halted on the daily quota")

    return resume_quota_halted_months


def _observations(
    instance: DagsterInstance, month: str | None, since: float
) -> Iterator[tuple[str, dict]]:
    records_filter = AssetRecordsFilter(
        asset_key=AssetKey(COVERS_ASSET),
        asset_partitions=[month] if month else None,
        after_timestamp=float(since),
    )
    cursor = None
    while True:
        result = instance.fetch_observations(records_filter, 500, cursor, ascending=True)
        for record in result.records:
            observation = record.asset_observation
            if observation is None or observation.partition is None:
                continue
            values = {key: value.value for key, value in observation.metadata.items()}
            if events.QUOTA_HALT_KEY in values or events.QUOTA_RESUME_KEY in values:
                yield observation.partition, values
        if not result.has_more:
            return
        cursor = result.cursor
