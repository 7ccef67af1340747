"""Runs whose process died: found, failed and their pool slots given back.

Dagster's run monitoring frees the slots of finished runs and checks the workers of runs that
its run launcher started; a run of ``dagster job execute`` is neither, so a killed CLI leaves
its run STARTED, holding its slots and queued claims, and later runs wait for ever. Three parts:

- ``watched_run_process`` (around the executor, in the run process; see executor.py): records
  the run process when the run starts (``run_process.RUN_PROCESS_TAG``), and while the run's
  steps wait on a pool, warns every ``WATCH_INTERVAL_S`` (15 s) at most if the slots are held by
  a run whose process is gone, naming that run and the command that frees it (there may be no
  daemon to do it).
- the ``…_dead_runs`` sensor (the daemon, every 30 s: ``PASSPORT_WATCH_INTERVAL_S``): fails every
  STARTED covers run whose processes are certainly gone (``run_process.judge``) and frees its
  slots and claims.
- ``python -m passport_pipeline.cli.release RUN_ID``: the same for one run, by hand.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from dagster import (
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunsFilter,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from passport_pipeline.domain.month_runs import runs_the_covers
from passport_pipeline.execution.periodically import periodically
from passport_pipeline.execution.run_process import ProcessIdentity, judge

RELEASE_COMMAND = "python -m passport_pipeline.cli.release"
SENSOR_INTERVAL_S = 30
WATCH_INTERVAL_S = 15


def release(instance: DagsterInstance, run: DagsterRun, reason: str) -> None:
    """Free ``run``'s slots and claims, then fail it (if it is not finished) with ``reason``.

    Freed first, so that a run shown failed holds nothing, and so that a release interrupted
    between the two leaves the run STARTED, where the next release finds it again."""
    instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
    if not run.is_finished:
        instance.report_run_failed(
            run,
            f"Run {run.run_id} marked failed: {reason}. Its pool slots and queued claims are "
            "freed. Re-execute it from failure, or launch the month again.",
        )


def release_dead_runs(instance: DagsterInstance) -> list[str]:
    """Release every STARTED run of the covers whose processes are certainly gone: runs of the
    job and of the asset's page (``__ASSET_JOB``) alike (``month_runs.runs_the_covers``)."""
    released = []
    started = instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.STARTED]))
    for run in started:
        selection = [key.to_user_string() for key in run.asset_selection or ()]
        if not runs_the_covers(run.job_name, selection):
            continue
        verdict = judge(instance, run)
        if verdict.gone:
            release(instance, run, verdict.reason)
            released.append(run.run_id)
    return released


def dead_runs_sensor(job_name: str, interval_s: float = SENSOR_INTERVAL_S):
    """The daemon's check for covers runs whose process is gone, every ``interval_s``."""

    @sensor(
        name=f"{job_name}_dead_runs",
        minimum_interval_seconds=max(1, int(interval_s)),
        default_status=DefaultSensorStatus.RUNNING,
        description=(
            "Marks failed a covers run whose process is gone (kill -9, a closed terminal, OOM) "
            "and gives back its pool slots; judges only runs started on this machine."
        ),
    )
    def release_dead_runs_sensor(context: SensorEvaluationContext):
        """Fails runs whose process was killed (e.g. kill -9 of `dagster job execute`) and gives
        their pool slots back. Only runs whose processes ran on this machine are judged."""
        released = release_dead_runs(context.instance)
        if released:
            context.log.warning(f"released runs whose process is gone: {released}")
            return SkipReason(f"released {len(released)} dead run(s): {', '.join(released)}")
        return SkipReason("no STARTED run has lost its process")

    return release_dead_runs_sensor


def stale_holder(instance: DagsterInstance, run_id: str) -> str | None:
    """Why slots held by ``run_id`` will not come back by themselves, or None if they will."""
    run = instance.get_run_by_id(run_id)
    if run is None:
        return f"run {run_id} no longer exists"
    if run.is_finished:
        return f"run {run_id} ended ({run.status.value}) without giving its slots back"
    if run.status == DagsterRunStatus.STARTED:
        verdict = judge(instance, run)
        if verdict.gone:
            return f"run {run_id} is still STARTED, but {verdict.reason}"
    return None


def blocked_warnings(instance: DagsterInstance, run_id: str, warned: set[str]) -> Iterator[str]:
    """Warnings for this run's steps that wait on slots no one will give back."""
    storage = instance.event_log_storage
    infos = storage.get_concurrency_infos(sorted(storage.get_concurrency_keys()))
    for pool, info in infos.items():
        held = {(slot.run_id, slot.step_key) for slot in info.claimed_slots}
        waiting = [
            step
            for step in info.pending_steps
            if step.run_id == run_id and (step.run_id, step.step_key) not in held
        ]
        holders = sorted({slot.run_id for slot in info.claimed_slots} - {run_id} - warned)
        for holder in holders if waiting else ():
            reason = stale_holder(instance, holder)
            if reason:
                warned.add(holder)
                yield (
                    f"{len(waiting)} step(s) of this run wait for pool '{pool}', whose slots are "
                    f"held by a run that will not give them back: {reason}. The daemon frees "
                    f"them within a minute; with no dagster-daemon running, free them with: "
                    f"{RELEASE_COMMAND} {holder}"
                )


@contextmanager
def watched_run_process(plan_context) -> Iterator[None]:
    """While a run executes (in its run process): record the process on the run, and warn when
    its steps wait on pool slots held by a run that will not give them back."""
    instance, run_id = plan_context.instance, plan_context.run_id
    identity = ProcessIdentity.of_this_process(run_id)
    instance.add_run_tags(run_id, identity.to_tags())
    warned: set[str] = set()

    def watch() -> None:
        for message in blocked_warnings(instance, run_id, warned):
            plan_context.log.warning(message)

    with periodically(plan_context, WATCH_INTERVAL_S, "blocked-claim watch", watch):
        yield
