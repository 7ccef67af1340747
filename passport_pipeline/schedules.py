"""When the job runs, and what happens when a run fails.

- The monthly schedule: the 1st at 02:00 Asia/Seoul, for the month that just ended.
- A run-failure sensor: a month with failed users never reaches ``record_month`` (Dagster skips
  a fan-in after a failure), so the sensor records that run's counts on the month's
  ``passport_covers`` partition, where the catalog shows them next to the last full summary.
"""

from dagster import (
    AssetObservation,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    JobDefinition,
    RunFailureSensorContext,
    build_schedule_from_partitioned_job,
    run_failure_sensor,
)

from passport_pipeline.covers_job import COVERS_ASSET
from passport_pipeline.progress import run_progress


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


def failed_month_sensor(job: JobDefinition):
    @run_failure_sensor(
        name=f"{job.name}_failures",
        monitored_jobs=[job],
        default_status=DefaultSensorStatus.RUNNING,
    )
    def record_failed_month(context: RunFailureSensorContext):
        """Records a failed run's counts (completed, failed, skipped, remaining) on its month."""
        run = context.dagster_run
        month = run.tags.get("dagster/partition")
        if not month:
            return
        progress, _ = run_progress(context.instance, run.run_id)
        context.instance.report_runless_asset_event(
            AssetObservation(
                asset_key=COVERS_ASSET,
                partition=month,
                metadata={**progress.as_dict(), "run_id": run.run_id, "run_status": "failed"},
            )
        )

    return record_failed_month
