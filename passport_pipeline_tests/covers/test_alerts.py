"""Stopped months reach a person: Dagster's run-status sensors deliver the alert to a real SMTP
server (aiosmtpd) and a local stand-in for Slack, evaluated the way the daemon evaluates them."""

from __future__ import annotations

import json
import re

import pytest
from dagster import (
    DagsterEventType,
    DagsterInstance,
    build_run_status_sensor_context,
    build_sensor_context,
    materialize,
)

from passport_pipeline.covers.alerts import ALERTS_TAG, alert_resources_for, month_alert_sensors
from passport_pipeline.covers.asset import build_covers_asset
from passport_pipeline.covers.names import HALT_TAG, JOB_NAME
from passport_pipeline.covers.policies import cover_retry_policy
from passport_pipeline.definitions import build_definitions, defs
from passport_pipeline.settings import SettingsError, load_settings
from passport_pipeline_tests.support.alert_peers import SlackServer, SmtpServer
from passport_pipeline_tests.support.dataset import UserRow, october, write_dataset
from passport_pipeline_tests.support.deployment import free_port
from passport_pipeline_tests.support.launch import local_resources_for

UI = "http://127.0.0.1:3000"
SMTP_PASSWORD = "smtp-password-never-in-a-message"
USERS = [
    UserRow(1, visits=[(1, october(3)), (2, october(4))]),
    UserRow(2, visits=[(3, october(5))]),
    UserRow(3, title=None),  # no passport: skipped
]
covers = build_covers_asset(cover_retry_policy(delay_s=0.05))
failure_alerts, cancel_alerts, alert_retries = month_alert_sensors(JOB_NAME, UI, retry_after_s=0)


def failed_month(sqlite_url: str, tmp_path, instance: DagsterInstance) -> str:
    """A real run of October for users 1-3 whose store cannot be written: 2 fail, 1 skipped."""
    write_dataset(sqlite_url, USERS)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the store's folder should be")
    result = materialize(
        [covers],
        resources=local_resources_for(sqlite_url, blocker),
        instance=instance,
        partition_key="2026-10",
        run_config={"ops": {"passport_covers": {"config": {"user_ids": [1, 2, 3]}}}},
        raise_on_error=False,
    )
    assert not result.success
    return result.run_id


def channels(monkeypatch, smtp_port: int | None, slack: SlackServer | None, **env) -> dict:
    """The alert resources exactly as the definitions build them from these variables."""
    variables = {"PASSPORT_UI_URL": UI, **env}
    if smtp_port is not None:
        variables |= {
            "PASSPORT_ALERT_SMTP_HOST": "127.0.0.1",
            "PASSPORT_ALERT_SMTP_PORT": str(smtp_port),
            "PASSPORT_ALERT_SMTP_TLS": "none",
            "PASSPORT_ALERT_SMTP_USER": "ops",
            "PASSPORT_ALERT_SMTP_PASSWORD": SMTP_PASSWORD,
            "PASSPORT_ALERT_EMAIL_FROM": "Passport pipeline <pipeline@example.com>",
            "PASSPORT_ALERT_EMAIL_TO": "oncall@example.com, lead@example.com",
        }
    if slack is not None and "PASSPORT_ALERT_SLACK_TOKEN" not in env:
        variables["PASSPORT_ALERT_SLACK_WEBHOOK_URL"] = slack.webhook_url
    for name, value in variables.items():
        monkeypatch.setenv(name, value)  # the secrets reach the resources as EnvVar
    return alert_resources_for(load_settings(variables))


def tick(sensor, instance: DagsterInstance, resources: dict, cursor: str | None = None):
    """One evaluation as the daemon makes it: the sensor's cursor in, its result out."""
    with build_sensor_context(instance=instance, cursor=cursor, resources=resources) as context:
        return sensor.evaluate_tick(context)


def ledger(instance: DagsterInstance, run_id: str) -> dict:
    return json.loads(instance.get_run_by_id(run_id).tags[ALERTS_TAG])


def assert_names_the_month(text: str, run_id: str, counts: str) -> None:
    assert "2026-10" in text
    assert f"Users: {counts}." in text
    assert f"{UI}/runs/{run_id}" in text
    assert "re-execute the run from failure" in text
    assert SMTP_PASSWORD not in text and "test-webhook-secret" not in text


def test_a_failed_month_emails_and_posts_to_slack_once(sqlite_url, tmp_path, instance, monkeypatch):
    with SmtpServer(users={"ops": SMTP_PASSWORD}) as smtp, SlackServer() as slack:
        resources = channels(monkeypatch, smtp.port, slack)
        cursor = tick(failure_alerts, instance, resources).cursor  # the sensor starts
        run_id = failed_month(sqlite_url, tmp_path, instance)
        result = tick(failure_alerts, instance, resources, cursor)
        [reaction] = result.dagster_run_reactions
        assert reaction.error is None and reaction.dagster_run.run_id == run_id

        [mail] = smtp.messages
        assert mail["Subject"] == "Passport covers 2026-10: the run failed"
        assert mail["To"] == "oncall@example.com, lead@example.com"
        assert smtp.logins == ["ops"]
        counts = "3 total, 0 completed, 2 failed, 1 skipped, 0 remaining (100 % done)"
        assert_names_the_month(mail.get_content(), run_id, counts)
        assert "Estimated cost so far" not in mail.get_content()  # no cover was stored
        [(path, _)] = slack.posts
        assert path == "/services/T000/B000/test-webhook-secret"
        [text] = slack.texts
        assert text.startswith("*Passport covers 2026-10: the run failed*\n")
        assert_names_the_month(text, run_id, counts)
        assert ledger(instance, run_id)["sent"] == ["email", "slack"]

        # The next tick, and the same run seen again (a daemon restarted mid-tick), send nothing.
        assert not tick(failure_alerts, instance, resources, result.cursor).dagster_run_reactions
        run = instance.get_run_by_id(run_id)
        [failure_event] = instance.all_logs(run_id, of_type=DagsterEventType.RUN_FAILURE)
        context = build_run_status_sensor_context(
            sensor_name=failure_alerts.name,
            dagster_event=failure_event.dagster_event,
            dagster_instance=instance,
            dagster_run=run,
            resources=resources,
        )
        failure_alerts(context)
        assert (len(smtp.messages), len(slack.posts)) == (1, 1)


def test_a_canceled_month_alerts_through_the_slack_api(tmp_path, instance, monkeypatch):
    with SmtpServer(users={"ops": SMTP_PASSWORD}) as smtp, SlackServer() as slack:
        token_env = {
            "PASSPORT_ALERT_SLACK_TOKEN": slack.token,
            "PASSPORT_ALERT_SLACK_CHANNEL": "#passport-ops",
            "PASSPORT_ALERT_SLACK_API_URL": f"{slack.base_url}/api/",
        }
        resources = channels(monkeypatch, smtp.port, slack, **token_env)
        cursor = tick(cancel_alerts, instance, resources).cursor
        # Canceled while queued: Terminate on a run that had not started.
        run = instance.create_run_for_job(
            defs.resolve_job_def(JOB_NAME), tags={"dagster/partition": "2026-10"}, run_config={}
        )
        instance.report_run_canceling(run)
        instance.report_run_canceled(run)
        [reaction] = tick(cancel_alerts, instance, resources, cursor).dagster_run_reactions
        assert reaction.error is None

        [mail] = smtp.messages
        assert mail["Subject"] == "Passport covers 2026-10: the run was canceled"
        counts = "unknown total, 0 completed, 0 failed, 0 skipped, unknown remaining"
        assert_names_the_month(mail.get_content(), run.run_id, counts)
        [(path, body)] = slack.posts
        assert (path, body["channel"]) == ("/api/chat.postMessage", "#passport-ops")
        assert_names_the_month(body["text"], run.run_id, counts)


def test_a_halted_month_says_why(sqlite_url, tmp_path, instance, monkeypatch):
    with SlackServer() as slack:
        resources = channels(monkeypatch, None, slack)
        cursor = tick(failure_alerts, instance, resources).cursor
        run_id = failed_month(sqlite_url, tmp_path, instance)
        # What covers/cover_step._halt_run writes when the model cannot serve anyone.
        reason = "Gemini rejected the API key (API_KEY_INVALID)"
        instance.add_run_tags(run_id, {HALT_TAG: json.dumps({"run_id": run_id, "reason": reason})})
        tick(failure_alerts, instance, resources, cursor)
        [text] = slack.texts
        assert text.startswith("*Passport covers 2026-10: the run was halted*")
        assert f"was halted: {reason}." in text


def test_nothing_is_sent_when_no_channel_is_configured(sqlite_url, tmp_path, instance):
    resources = build_definitions(load_settings({"PASSPORT_HOME": str(tmp_path)})).resources
    assert not resources["alert_email"].enabled and not resources["alert_slack"].enabled
    alert_resources = {key: resources[key] for key in ("alert_email", "alert_slack")}
    cursor = tick(failure_alerts, instance, alert_resources).cursor
    run_id = failed_month(sqlite_url, tmp_path, instance)
    result = tick(failure_alerts, instance, alert_resources, cursor)
    assert not result.dagster_run_reactions
    assert "no alert channel is configured" in result.skip_message
    assert ALERTS_TAG not in instance.get_run_by_id(run_id).tags


def test_a_mail_server_that_is_down_fails_the_tick_and_gets_the_alert_later(
    sqlite_url, tmp_path, instance, monkeypatch
):
    port = free_port()  # nothing listens there yet: the mail server is down
    with SlackServer() as slack:
        resources = channels(monkeypatch, port, slack)
        cursor = tick(failure_alerts, instance, resources).cursor
        run_id = failed_month(sqlite_url, tmp_path, instance)
        result = tick(failure_alerts, instance, resources, cursor)
        # The tick fails, visibly, naming the channel; Slack got its alert.
        [reaction] = result.dagster_run_reactions
        assert "email: ConnectionRefusedError" in str(reaction.error)
        assert "monthly_passport_covers_alert_retries" in str(reaction.error)
        assert SMTP_PASSWORD not in str(reaction.error)
        assert len(slack.texts) == 1
        assert (ledger(instance, run_id)["sent"], ledger(instance, run_id)["pending"]) == (
            ["slack"],
            ["email"],
        )
        # Dagster moves the run-status sensor past the run even so: it will not look again...
        assert not tick(failure_alerts, instance, resources, result.cursor).dagster_run_reactions
        # ...the retry sensor does: still down, its tick fails too.
        with pytest.raises(Exception, match="email: ConnectionRefusedError"):
            tick(alert_retries, instance, resources)
        with SmtpServer(port=port, users={"ops": SMTP_PASSWORD}) as smtp:
            skipped = tick(alert_retries, instance, resources)
            [mail] = smtp.messages
            counts = "3 total, 0 completed, 2 failed, 1 skipped, 0 remaining (100 % done)"
            assert_names_the_month(mail.get_content(), run_id, counts)
            assert run_id in skipped.skip_message
            assert tick(alert_retries, instance, resources).skip_message == "no alert is pending"
            assert len(smtp.messages) == 1
        assert len(slack.texts) == 1  # Slack's alert was not sent twice
        assert ledger(instance, run_id)["sent"] == ["slack", "email"]


def test_a_slack_answer_that_may_pass_is_retried(sqlite_url, tmp_path, instance, monkeypatch):
    with SlackServer(fail_first=2) as slack:
        resources = channels(monkeypatch, None, slack)
        cursor = tick(failure_alerts, instance, resources).cursor
        run_id = failed_month(sqlite_url, tmp_path, instance)
        [reaction] = tick(failure_alerts, instance, resources, cursor).dagster_run_reactions
        assert reaction.error is None
        assert len(slack.posts) == 3  # two 503s, then delivered
        [text] = slack.texts
        assert run_id in text


EMAIL = {
    "PASSPORT_ALERT_SMTP_HOST": "smtp.example.com",
    "PASSPORT_ALERT_EMAIL_FROM": "pipeline@example.com",
    "PASSPORT_ALERT_EMAIL_TO": "oncall@example.com",
}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PASSPORT_ALERT_EMAIL_TO": "a@example.com"}, "PASSPORT_ALERT_SMTP_HOST is not"),
        ({**EMAIL, "PASSPORT_ALERT_EMAIL_TO": ""}, "PASSPORT_ALERT_EMAIL_TO is not"),
        ({**EMAIL, "PASSPORT_ALERT_EMAIL_FROM": ""}, "PASSPORT_ALERT_EMAIL_FROM is not"),
        ({**EMAIL, "PASSPORT_ALERT_EMAIL_TO": "oncall"}, "'oncall' is not an email address"),
        ({**EMAIL, "PASSPORT_ALERT_SMTP_USER": "ops"}, "go together"),
        ({**EMAIL, "PASSPORT_ALERT_SMTP_PASSWORD": "pw"}, "go together"),
        ({**EMAIL, "PASSPORT_ALERT_SMTP_TLS": "tls1.3"}, "not one of: starttls, ssl, none"),
        ({**EMAIL, "PASSPORT_ALERT_SMTP_PORT": "70000"}, "is not a port"),
        (
            {
                **EMAIL,
                "PASSPORT_ALERT_SMTP_TLS": "none",
                "PASSPORT_ALERT_SMTP_USER": "ops",
                "PASSPORT_ALERT_SMTP_PASSWORD": "pw",
            },
            "would send the SMTP password to smtp.example.com unencrypted",
        ),
        (
            {
                "PASSPORT_ALERT_SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/x",
                "PASSPORT_ALERT_SLACK_TOKEN": "xoxb-1",
                "PASSPORT_ALERT_SLACK_CHANNEL": "#ops",
            },
            "not both",
        ),
        ({"PASSPORT_ALERT_SLACK_WEBHOOK_URL": "hooks.slack.com/x"}, "not an http(s) URL"),
        ({"PASSPORT_ALERT_SLACK_TOKEN": "xoxb-1"}, "needs PASSPORT_ALERT_SLACK_CHANNEL"),
        ({"PASSPORT_ALERT_SLACK_CHANNEL": "#ops"}, "PASSPORT_ALERT_SLACK_TOKEN is not"),
        ({"PASSPORT_UI_URL": "127.0.0.1:3000"}, "PASSPORT_UI_URL='127.0.0.1:3000' is not"),
        ({"PASSPORT_ALERT_TIMEOUT_S": "0"}, "more than 0 seconds"),
    ],
)
def test_alert_settings_that_cannot_work_are_refused(env, message):
    with pytest.raises(SettingsError, match=re.escape(message)):
        load_settings(env)


def test_a_webhook_url_that_is_refused_is_not_repeated():
    secret = "hooks.slack.com/services/T0/B0/secret-part"
    with pytest.raises(SettingsError) as refused:
        load_settings({"PASSPORT_ALERT_SLACK_WEBHOOK_URL": secret})
    assert "secret-part" not in str(refused.value)


def test_configured_channels_take_their_secrets_from_the_environment():
    env = {
        **EMAIL,
        "PASSPORT_ALERT_SMTP_USER": "ops",
        "PASSPORT_ALERT_SMTP_PASSWORD": "must-not-be-read",
        "PASSPORT_ALERT_SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/must-not-be-read",
    }
    settings = load_settings(env)
    assert "must-not-be-read" not in repr(settings)
    assert (settings.alerts.smtp_port, settings.alerts.smtp_tls) == (587, "starttls")
    assert load_settings({**env, "PASSPORT_ALERT_SMTP_TLS": "ssl"}).alerts.smtp_port == 465
    resources = build_definitions(settings).resources
    assert resources["alert_email"].enabled and resources["alert_slack"].enabled
    assert resources["alert_email"].recipients == ["oncall@example.com"]
