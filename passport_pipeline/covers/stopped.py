"""What happens when a month's run stops short: run-status sensors for failed and canceled runs.

A month with failed users never reaches ``record_month`` (Dagster skips a fan-in after a
failure), so the sensor records that run's counts on the month's ``passport_covers`` partition,
where the catalog shows them next to the last full summary. First it records the users whose
step never started (a killed run process could not), so that they count as failed and
re-execution from failure covers them.
"""

from dagster import (
    DagsterRunStatus,
    RunStatusSensorContext,
    SensorDefinition,
)

from passport_pipeline.covers import events
from passport_pipeline.covers.names import PARTITION_TAG, covers_run_status_sensor, is_covers_run
from passport_pipeline.covers.progress import month_progress, run_progress
from passport_pipeline.covers.unstarted_steps import record_unstarted_user_steps


def stopped_month_sensors(
    job_name: str, ui_url: str | None = None, interval_s: float | None = None
) -> list[SensorDefinition]:
    """One sensor for failed runs of the job, one for canceled ones; each records the run's
    users that never started and the run's and the month's counts on its month (every
    ``interval_s``; None: the daemon's default, 30 s)."""
    return [
        _stopped_month_sensor(
            job_name, DagsterRunStatus.FAILURE, "failures", "failed", ui_url, interval_s
        ),
        _stopped_month_sensor(
            job_name, DagsterRunStatus.CANCELED, "cancellations", "canceled", ui_url, interval_s
        ),
    ]


def _stopped_month_sensor(
    job_name: str,
    status: DagsterRunStatus,
    name: str,
    label: str,
    ui_url: str | None,
    interval_s: float | None,
) -> SensorDefinition:
    @covers_run_status_sensor(
        status,
        f"{job_name}_{name}",
        f"Records a {label} run's never-started users, and its and its month's counts "
        "(with the run to re-execute) on the month's partition.",
        interval_s,
    )
    def record_stopped_month(context: RunStatusSensorContext):
        run = context.dagster_run
        if not is_covers_run(run):
            return
        record_unstarted_user_steps(context.instance, run.run_id)
        month = run.tags.get(PARTITION_TAG)
        if not month:
            return
        progress, _ = run_progress(context.instance, run.run_id)
        books = month_progress(context.instance, month)
        context.instance.report_runless_asset_event(
            events.stopped_run(month, run.run_id, label, progress.as_dict(), books, ui_url)
        )

    return record_stopped_month
