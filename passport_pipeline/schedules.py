"""When the job runs, and what happens when a run fails.

- The monthly schedule: the 1st at 02:00 Asia/Seoul, for the month that just ended.
- Run-status sensors for failed and canceled runs: a month with failed users never reaches
  ``record_month`` (Dagster skips a fan-in after a failure), so the sensor records that run's
  counts on the month's ``passport_covers`` partition, where the catalog shows them next to the
  last full summary. First it records the users whose step never started (a killed run process
  could not), so that they count as failed and re-execution from failure covers them.
"""

from dagster import (
    AssetObservation,
    DagsterRunStatus,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    RunStatusSensorContext,
    SensorDefinition,
    build_schedule_from_partitioned_job,
    run_status_sensor,
)

from passport_pipeline.covers_job import COVERS_ASSET, is_covers_run
from passport_pipeline.progress import run_progress
from passport_pipeline.unstarted_steps import record_unstarted_user_steps


def monthly_covers_schedule(job):
    """The monthly schedule of ``job`` (the covers' asset job)."""
    return build_schedule_from_partitioned_job(
        job,
        name=f"{job.name}_schedule",
        description=(
            "Each tick runs the month that just ended: the tick on the 1st of a month at 02:00 "
            "Asia/Seoul runs the previous month's partition (2026-12-01 02:00 KST runs 2026-11; "
            "2027-01-01 02:00 KST runs 2026-12)."
        ),
        default_status=DefaultScheduleStatus.RUNNING,
    )


def stopped_month_sensors(job_name: str) -> list[SensorDefinition]:
    """One sensor for failed runs of the job, one for canceled ones; each records the run's
    users that never started and the run's counts on its month."""
    return [
        _stopped_month_sensor(job_name, DagsterRunStatus.FAILURE, "failures", "failed"),
        _stopped_month_sensor(job_name, DagsterRunStatus.CANCELED, "cancellations", "canceled"),
    ]


def _stopped_month_sensor(
    job_name: str, status: DagsterRunStatus, name: str, label: str
) -> SensorDefinition:
    # Every run is watched, then filtered: a month materialized from the asset's page runs as
    # Dagster's implicit asset job, and a `dagster job execute` run's origin is not this code
    # location as the daemon loads it (a sensor limited to the location never sees those).
    @run_status_sensor(
        run_status=status,
        name=f"{job_name}_{name}",
        monitor_all_code_locations=True,
        default_status=DefaultSensorStatus.RUNNING,
        description=f"Records a {label} run's unstarted users and counts on its month.",
    )
    def record_stopped_month(context: RunStatusSensorContext):
        run = context.dagster_run
        if not is_covers_run(run):
            return
        record_unstarted_user_steps(context.instance, run.run_id)
        month = run.tags.get("dagster/partition")
        if not month:
            return
        progress, _ = run_progress(context.instance, run.run_id)
        context.instance.report_runless_asset_event(
            AssetObservation(
                asset_key=COVERS_ASSET,
                partition=month,
                metadata={**progress.as_dict(), "run_id": run.run_id, "run_status": label},
            )
        )

    return record_stopped_month
