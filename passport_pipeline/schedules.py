"""The monthly schedule: the 1st at 02:00 Asia/Seoul, for the month that just ended."""

from dagster import DefaultScheduleStatus, JobDefinition, build_schedule_from_partitioned_job


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
