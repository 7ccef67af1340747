"""The month that just ended, not covered by its due day, tells a person.

The schedule runs a month on the 1st at 02:00 Seoul time; if it was off, the daemon was down,
or the run failed and nobody finished it, nothing else notices that the month was never
covered. This sensor looks once an hour: from ``PASSPORT_MONTH_DUE_DAY`` (the 3rd by default)
of a month on, if the previous month is not materialized (every planned user covered, skipped
or refused), it sends one alert for that month by the configured channels (email, Slack) and
remembers the month in its cursor, so each month is reported once. An alert that cannot be
delivered fails the tick and is sent at the next one (the cursor moves only on success).
"""

from __future__ import annotations

from datetime import datetime

from dagster import (
    AssetKey,
    DefaultSensorStatus,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from passport_pipeline.covers.names import COVERS_ASSET
from passport_pipeline.covers.progress import month_progress
from passport_pipeline.domain.alert_message import AlertMessage
from passport_pipeline.domain.months import SEOUL, Month
from passport_pipeline.domain.progress import progress_line
from passport_pipeline.resources.alert_channels import EmailAlerts, SlackAlerts
from passport_pipeline.settings import Settings

CHECK_EVERY_S = 3600


def overdue_month(now: datetime, due_day: int, first_month: str) -> Month | None:
    """The month that just ended, if ``now`` is on or after its due day in the next month and
    it is a partition at all; else None."""
    today = now.astimezone(SEOUL)
    if today.day < due_day:
        return None
    ended = Month.of(today).previous()
    return ended if ended.key >= first_month else None


def overdue_message(month: Month, due_day: int, progress: str, ui_url: str | None) -> AlertMessage:
    where = f"{ui_url.rstrip('/')}/assets/{COVERS_ASSET}" if ui_url else "the asset passport_covers"
    return AlertMessage(
        subject=f"passport covers: {month} not covered by day {due_day}",
        text=(
            f"The covers of {month} are not done (day {due_day} of the next month has come).\n"
            f"Where it stands, over every run of the month: {progress}\n"
            f"Launch the month {month} (the schedule, {where}, or dagster job execute with the "
            f"partition {month}); stored covers are reused, never paid twice."
        ),
    )


def overdue_month_sensor(job_name: str, settings: Settings):
    """The hourly check of the month that just ended (module docstring)."""
    due_day, first_month = settings.month_due_day, settings.first_month
    ui_url = settings.alerts.ui_url

    @sensor(
        name=f"{job_name}_overdue_month",
        minimum_interval_seconds=CHECK_EVERY_S,
        default_status=DefaultSensorStatus.RUNNING,
        description=(
            f"Alerts (email, Slack) once when the month that just ended is not covered by day "
            f"{due_day} of the next month (PASSPORT_MONTH_DUE_DAY)."
        ),
    )
    def alert_overdue_month(
        context: SensorEvaluationContext, alert_email: EmailAlerts, alert_slack: SlackAlerts
    ):
        month = overdue_month(datetime.now(SEOUL), due_day, first_month)
        if month is None:
            return SkipReason(f"the month that just ended is not due until day {due_day}")
        if context.cursor == month.key:
            return SkipReason(f"{month} was already reported")
        done = context.instance.get_materialized_partitions(AssetKey(COVERS_ASSET))
        if month.key in done:
            return SkipReason(f"{month} is covered")
        channels = [channel for channel in (alert_email, alert_slack) if channel.enabled]
        if not channels:
            return SkipReason(f"{month} is not covered; no alert channel is configured")
        where = progress_line(month_progress(context.instance, month.key))
        message = overdue_message(month, due_day, where, ui_url)
        for channel in channels:
            channel.send(message)  # a failure fails the tick; the cursor stays, it is retried
        context.update_cursor(month.key)
        return SkipReason(f"{month} is not covered: alert sent")

    return alert_overdue_month
