"""The month that just ended, not covered by its due day, is reported once (the sensor evaluated
as the daemon does, delivering to a local Slack stand-in)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from dagster import DagsterInstance, build_sensor_context

from passport_pipeline.covers.alerts import alert_resources_for
from passport_pipeline.covers.overdue import overdue_month, overdue_month_sensor
from passport_pipeline.domain.months import Month
from passport_pipeline.settings import SettingsError, load_settings
from passport_pipeline_tests.support.alert_peers import SlackServer


@pytest.mark.parametrize(
    ("now", "due_day", "first", "expected"),
    [
        (datetime(2026, 12, 3, 0, 0, tzinfo=UTC), 3, "2024-01", Month(2026, 11)),  # 09:00 KST
        (datetime(2026, 12, 2, 14, 59, tzinfo=UTC), 3, "2024-01", None),  # 23:59 KST on the 2nd
        (datetime(2026, 12, 2, 15, 0, tzinfo=UTC), 3, "2024-01", Month(2026, 11)),  # the 3rd, KST
        (datetime(2027, 1, 20, tzinfo=UTC), 3, "2024-01", Month(2026, 12)),
        (datetime(2026, 12, 5, tzinfo=UTC), 3, "2026-12", None),  # not a partition yet
    ],
)
def test_the_month_that_just_ended_is_due_from_its_due_day(now, due_day, first, expected):
    assert overdue_month(now, due_day, first) == expected


def tick(sensor, instance: DagsterInstance, resources: dict, cursor: str | None = None):
    with build_sensor_context(instance=instance, cursor=cursor, resources=resources) as context:
        return sensor.evaluate_tick(context)


def test_an_uncovered_month_is_reported_once(instance, monkeypatch):
    with SlackServer() as slack:
        env = {"PASSPORT_MONTH_DUE_DAY": "1", "PASSPORT_UI_URL": "http://dagster.example"}
        env["PASSPORT_ALERT_SLACK_WEBHOOK_URL"] = slack.webhook_url
        monkeypatch.setenv("PASSPORT_ALERT_SLACK_WEBHOOK_URL", slack.webhook_url)  # as EnvVar
        settings = load_settings(env)
        sensor = overdue_month_sensor("monthly_passport_covers", settings)
        resources = alert_resources_for(settings)
        ended = Month.of(datetime.now(UTC)).previous()

        first = tick(sensor, instance, resources)
        assert first.cursor == ended.key
        [text] = slack.texts
        assert text.startswith(f"*passport covers: {ended} not covered by day 1*")
        assert "0 of ? users done" in text and "http://dagster.example/assets/" in text

        again = tick(sensor, instance, resources, first.cursor)
        assert again.cursor == ended.key and len(slack.texts) == 1


def test_the_first_month_and_the_due_day_are_checked():
    assert load_settings({"PASSPORT_FIRST_MONTH": "2025-03"}).first_month == "2025-03"
    with pytest.raises(SettingsError, match="PASSPORT_FIRST_MONTH"):
        load_settings({"PASSPORT_FIRST_MONTH": "March"})
    with pytest.raises(SettingsError, match="PASSPORT_MONTH_DUE_DAY=31"):
        load_settings({"PASSPORT_MONTH_DUE_DAY": "31"})
