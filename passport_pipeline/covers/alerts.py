"""A month whose run fails, is canceled or halts tells a person: by email and/or Slack.

Two of Dagster's run-status sensors (failed runs, canceled runs of the job) build the alert
from the run: its month, whether it failed, was canceled or halted (and why), the month's counts
over the run and its re-executions, the estimated cost, the run's id and its link in the UI,
and what to do. Each channel (``resources/alert_channels.py``) is off unless configured; with
none configured the sensors send nothing.

Not lost, not sent twice: when a run-status sensor's function raises, Dagster fails the tick
(shown on the sensor's page) but still moves the sensor's cursor past the run, so an alert that
could not be delivered would never be tried again. So each run keeps a ledger in its run tag
``passport/alerts``: the channels that have delivered and those still pending. A channel that
fails after its attempts stays pending, the tick fails visibly, and the sensor
``<job>_alert_retries`` tries the pending channels again every minute for a day. A channel
that delivered is never sent again, even if the same run is seen twice.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from dagster import (
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    DefaultSensorStatus,
    EnvVar,
    RunsFilter,
    RunStatusSensorContext,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from passport_pipeline.covers.names import (
    HALT_TAG,
    JOB_NAME,
    PARTITION_TAG,
    covers_run_status_sensor,
    is_covers_run,
)
from passport_pipeline.covers.progress import run_progress
from passport_pipeline.covers.quota_resume import run_quota_decision
from passport_pipeline.covers.unstarted_steps import record_unstarted_user_steps
from passport_pipeline.domain.alert_message import StopKind, StoppedMonth, build_alert
from passport_pipeline.domain.quota_days import DEFAULT_RESUME_DAYS
from passport_pipeline.domain.run_state import own_state, own_state_tag
from passport_pipeline.resources.alert_channels import (
    AlertChannel,
    AlertDeliveryError,
    EmailAlerts,
    SlackAlerts,
)
from passport_pipeline.settings import Settings

ALERTS_TAG = "passport/alerts"
RETRY_EVERY_S = 60
GIVE_UP_AFTER_S = 24 * 3600
_STATUS_KINDS = {
    DagsterRunStatus.FAILURE: StopKind.FAILED,
    DagsterRunStatus.CANCELED: StopKind.CANCELED,
}


class AlertsNotDelivered(Exception):
    """Some channels could not deliver; they stay pending for the retry sensor."""


def month_alert_sensors(
    job_name: str,
    ui_url: str | None,
    retry_after_s: float = RETRY_EVERY_S,
    quota_resume_days: int = DEFAULT_RESUME_DAYS,
) -> list[SensorDefinition]:
    """Alerts for failed and canceled runs of the covers, and the retries of undelivered ones
    (``retry_after_s`` after the last attempt). A halt on the daily quota says when the month
    resumes, or that its ``quota_resume_days`` automatic resumes are used up."""
    days = quota_resume_days
    return [
        _alert_sensor(job_name, DagsterRunStatus.FAILURE, "failure_alerts", ui_url, days),
        _alert_sensor(job_name, DagsterRunStatus.CANCELED, "cancel_alerts", ui_url, days),
        _retry_sensor(job_name, ui_url, retry_after_s, days),
    ]


def alert_resources_for(settings: Settings) -> dict:
    """The alert channels; each is off (sends nothing) unless its variables are set."""
    alerts = settings.alerts
    return {
        "alert_email": EmailAlerts(
            host=alerts.smtp_host,
            port=alerts.smtp_port,
            tls=alerts.smtp_tls,
            user=alerts.smtp_user,
            password=EnvVar("PASSPORT_ALERT_SMTP_PASSWORD")
            if alerts.smtp_password_in_env
            else None,
            sender=alerts.email_from,
            recipients=list(alerts.email_to),
            timeout_s=alerts.timeout_s,
        ),
        "alert_slack": SlackAlerts(
            webhook_url=(
                EnvVar("PASSPORT_ALERT_SLACK_WEBHOOK_URL") if alerts.slack_webhook_in_env else None
            ),
            token=EnvVar("PASSPORT_ALERT_SLACK_TOKEN") if alerts.slack_token_in_env else None,
            channel=alerts.slack_channel,
            api_url=alerts.slack_api_url,
            timeout_s=alerts.timeout_s,
        ),
    }


def _alert_sensor(
    job_name: str, status: DagsterRunStatus, name: str, ui_url: str | None, days: int
) -> SensorDefinition:
    @covers_run_status_sensor(
        status,
        f"{job_name}_{name}",
        f"Emails and/or posts to Slack when a month's run is {_STATUS_KINDS[status].value} "
        "or halted (each channel off unless configured).",
    )
    def alert_stopped_month(
        context: RunStatusSensorContext, alert_email: EmailAlerts, alert_slack: SlackAlerts
    ):
        if not is_covers_run(context.dagster_run):
            return SkipReason("not a run of the covers")
        channels = _enabled(alert_email, alert_slack)
        if not channels:
            return SkipReason("no alert channel is configured (README, Alerts)")
        # The counts must balance whichever stopped-run sensor ticks first (idempotent).
        record_unstarted_user_steps(context.instance, context.dagster_run.run_id)
        run_id = context.dagster_run.run_id
        sent = deliver_alert(context.instance, run_id, channels, ui_url, days)
        context.log.info(f"alert for run {context.dagster_run.run_id} sent by {sent or 'none'}")
        return None

    return alert_stopped_month


def _retry_sensor(
    job_name: str, ui_url: str | None, retry_after_s: float, days: int
) -> SensorDefinition:
    @sensor(
        name=f"{job_name}_alert_retries",
        minimum_interval_seconds=RETRY_EVERY_S,
        default_status=DefaultSensorStatus.RUNNING,
        description="Sends again, every minute for a day, the alerts a channel could not deliver.",
    )
    def retry_pending_alerts(
        context: SensorEvaluationContext, alert_email: EmailAlerts, alert_slack: SlackAlerts
    ):
        channels = _enabled(alert_email, alert_slack)
        now = time.time()
        runs = context.instance.get_runs(
            RunsFilter(
                statuses=list(_STATUS_KINDS),
                updated_after=datetime.fromtimestamp(now - GIVE_UP_AFTER_S - 3600, tz=UTC),
            ),
            limit=200,
        )
        retried = []
        failures = []
        for run in filter(is_covers_run, runs):
            ledger = _ledger(run)
            if not ledger or not ledger["pending"] or now - ledger["tried_at"] < retry_after_s:
                continue
            if now - ledger["first_tried_at"] > GIVE_UP_AFTER_S:
                context.log.error(f"alert for run {run.run_id} given up: {ledger['pending']}")
                _write_ledger(
                    context.instance,
                    run.run_id,
                    {**ledger, "gave_up": ledger["pending"], "pending": []},
                )
                continue
            pending = {
                name: channel for name, channel in channels.items() if name in ledger["pending"]
            }
            retried.append(run.run_id)
            try:
                deliver_alert(context.instance, run.run_id, pending, ui_url, days)
            except AlertsNotDelivered as error:
                failures.append(str(error))
        if failures:
            raise AlertsNotDelivered("; ".join(failures))
        return SkipReason(f"retried {retried}" if retried else "no alert is pending")

    return retry_pending_alerts


def _enabled(email: AlertChannel, slack: AlertChannel) -> dict[str, AlertChannel]:
    return {
        name: channel for name, channel in (("email", email), ("slack", slack)) if channel.enabled
    }


def deliver_alert(
    instance: DagsterInstance,
    run_id: str,
    channels: dict[str, AlertChannel],
    ui_url: str | None,
    quota_resume_days: int = DEFAULT_RESUME_DAYS,
) -> list[str]:
    """Send the run's alert by each channel that has not delivered it yet; the channels that
    delivered now. Raises ``AlertsNotDelivered`` naming those that could not."""
    run = instance.get_run_by_id(run_id)
    ledger = _ledger(run) or {"sent": [], "pending": [], "first_tried_at": time.time()}
    todo = [name for name in channels if name not in ledger["sent"]]
    if not todo:
        return []
    # Pending before the first attempt: a sensor process that dies mid-send leaves it for the
    # retry sensor, which waits RETRY_EVERY_S after this attempt so as not to race it.
    ledger = {
        **ledger,
        "pending": sorted(set(ledger["pending"]) | set(todo)),
        "tried_at": time.time(),
    }
    _write_ledger(instance, run_id, ledger)
    message = build_alert(stopped_month(instance, run, ui_url, quota_resume_days))
    sent, errors = [], []
    for name in todo:
        try:
            channels[name].send(message)
        except AlertDeliveryError as error:
            errors.append(str(error))
            continue
        sent.append(name)
        ledger = {
            **ledger,
            "sent": [*ledger["sent"], name],
            "pending": [p for p in ledger["pending"] if p != name],
        }
        _write_ledger(instance, run_id, ledger)
    if errors:
        raise AlertsNotDelivered(
            f"alert for run {run_id} not delivered ({'; '.join(errors)}); the sensor "
            f"{JOB_NAME}_alert_retries tries again every minute for a day"
        )
    return sent


def stopped_month(
    instance: DagsterInstance,
    run: DagsterRun,
    ui_url: str | None,
    quota_resume_days: int = DEFAULT_RESUME_DAYS,
) -> StoppedMonth:
    """The facts of the alert, from the run, its tags and its run group's event log."""
    progress, _ = run_progress(instance, run.run_id)
    halted = own_state(run.tags, HALT_TAG, run.run_id)
    is_halted = halted is not None
    kind = StopKind.HALTED if is_halted else _STATUS_KINDS.get(run.status, StopKind.FAILED)
    return StoppedMonth(
        job_name=run.job_name,
        run_id=run.run_id,
        kind=kind,
        month=run.tags.get(PARTITION_TAG),
        total=progress.total,
        completed=progress.completed,
        failed=progress.failed,
        skipped=progress.skipped,
        remaining=progress.remaining,
        percent=progress.percent,
        # None (no cost line) when no paid call was made, as with the local model.
        estimated_cost_usd=progress.estimated_cost_usd or None,
        halt_reason=halted["reason"] if halted else None,
        ui_url=ui_url,
        quota=run_quota_decision(instance, run, time.time(), quota_resume_days)
        if is_halted
        else None,
    )


def pending_channels(run: DagsterRun) -> list[str]:
    """The alert channels that have not yet delivered the run's alert (the retry sensor's)."""
    ledger = _ledger(run)
    return list(ledger["pending"]) if ledger else []


def _ledger(run: DagsterRun | None) -> dict | None:
    # Re-executions copy their parent's tags: a ledger of another run is not this run's.
    return own_state(run.tags, ALERTS_TAG, run.run_id) if run else None


def _write_ledger(instance: DagsterInstance, run_id: str, ledger: dict) -> None:
    instance.add_run_tags(run_id, own_state_tag(ALERTS_TAG, run_id, ledger))
