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
    JobDefinition,
    RunStatusSensorContext,
    SensorDefinition,
    build_schedule_from_partitioned_job,
    run_status_sensor,
)

from passport_pipeline.covers_job import COVERS_ASSET
from passport_pipeline.progress import run_progress
from passport_pipeline.unstarted_steps import record_unstarted_user_steps


def monthly_covers_schedule(job: JobDefinition):
    return build_schedule_from_partitioned_job(
        job,
        name=f"{job.name}_schedule",
        description=(
            "Runs the month that just ended, on the 1st at 02:00 Asia/Seoul "
            "(2025-01-01 02:00 KST → partition 2024-12)."
        ),
        default_status=DefaultScheduleStatus.RUNNING,
    )


def stopped_month_sensors(job: JobDefinition) -> list[SensorDefinition]:
    """One sensor for failed runs of the job, one for canceled ones; each records the run's
    users that never started and the run's counts on its month."""
    return [
        _stopped_month_sensor(job, DagsterRunStatus.FAILURE, "failures", "failed"),
        _stopped_month_sensor(job, DagsterRunStatus.CANCELED, "cancellations", "canceled"),
    ]


def _stopped_month_sensor(
    job: JobDefinition, status: DagsterRunStatus, name: str, label: str
) -> SensorDefinition:
    @run_status_sensor(
        run_status=status,
        name=f"{job.name}_{name}",
        monitored_jobs=[job],
        default_status=DefaultSensorStatus.RUNNING,
        description=f"Records a {label} run's unstarted users and counts on its month.",
    )
    def record_stopped_month(context: RunStatusSensorContext):
        run = context.dagster_run
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
