"""When the month runs: the monthly schedule, the 1st at 02:00 Asia/Seoul, for the month that
just ended."""

from dagster import DefaultScheduleStatus, build_schedule_from_partitioned_job


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
