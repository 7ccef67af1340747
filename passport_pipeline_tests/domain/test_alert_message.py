"""The alert's words: month, what happened, counts, cost, run link, what to do."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from passport_pipeline.domain.alert_message import StopKind, StoppedMonth, build_alert
from passport_pipeline.domain.quota_days import QuotaHalt, decide

PACIFIC = ZoneInfo("America/Los_Angeles")

RUN_ID = "0f1e2d3c-aaaa-bbbb-cccc-123456789abc"


def stopped(**changes) -> StoppedMonth:
    facts = {
        "job_name": "monthly_passport_covers",
        "run_id": RUN_ID,
        "kind": StopKind.FAILED,
        "month": "2026-10",
        "total": 1000,
        "completed": 700,
        "failed": 20,
        "skipped": 5,
        "remaining": 275,
        "percent": 72.5,
        "estimated_cost_usd": 27.3,
        "ui_url": "http://127.0.0.1:3000",
    }
    return StoppedMonth(**{**facts, **changes})


@pytest.mark.parametrize(
    ("kind", "subject_end", "status"),
    [
        (StopKind.FAILED, "the run failed", "monthly_passport_covers failed."),
        (StopKind.CANCELED, "the run was canceled", "monthly_passport_covers was canceled."),
        (StopKind.HALTED, "the run was halted", "was halted: no reason recorded."),
    ],
)
def test_the_alert_names_the_month_and_what_happened(kind, subject_end, status):
    alert = build_alert(stopped(kind=kind))
    assert alert.subject == f"Passport covers 2026-10: {subject_end}"
    assert status in alert.text.splitlines()[0]
    assert alert.text.splitlines()[0].startswith(f"Month 2026-10: run {RUN_ID} ")


def test_a_halted_run_says_why():
    reason = "Gemini rejected the API key (API_KEY_INVALID)"
    alert = build_alert(stopped(kind=StopKind.HALTED, halt_reason=reason))
    assert f"was halted: {reason}." in alert.text
    assert "Fix the cause above first" in alert.text


@pytest.mark.parametrize(
    ("changes", "counts"),
    [
        ({}, "1000 total, 700 completed, 20 failed, 5 skipped, 275 remaining (72.5 % done)"),
        (
            {"total": None, "completed": 0, "failed": 0, "skipped": 0, "remaining": None}
            | {"percent": None},
            "unknown total, 0 completed, 0 failed, 0 skipped, unknown remaining",
        ),
        (
            {
                "total": 3,
                "completed": 0,
                "failed": 2,
                "skipped": 1,
                "remaining": 0,
                "percent": 100.0,
            },
            "3 total, 0 completed, 2 failed, 1 skipped, 0 remaining (100 % done)",
        ),
    ],
)
def test_the_alert_counts_the_users(changes, counts):
    alert = build_alert(stopped(**changes))
    assert f"Users: {counts}." in alert.text.splitlines()


@pytest.mark.parametrize(
    ("cost", "line"),
    [(27.3, "Estimated cost so far: $27.3000."), (0.039, "Estimated cost so far: $0.0390.")],
)
def test_the_cost_is_shown_when_known(cost, line):
    assert line in build_alert(stopped(estimated_cost_usd=cost)).text.splitlines()


def test_no_cost_line_when_no_step_reported_one():
    assert "cost" not in build_alert(stopped(estimated_cost_usd=None)).text


@pytest.mark.parametrize(
    ("ui_url", "run_line"),
    [
        ("http://127.0.0.1:3000", f"Run: http://127.0.0.1:3000/runs/{RUN_ID}"),
        ("https://dagster.example/", f"Run: https://dagster.example/runs/{RUN_ID}"),
        (None, f"Run: {RUN_ID}"),
    ],
)
def test_the_run_link_is_built_from_the_ui_url(ui_url, run_line):
    assert run_line in build_alert(stopped(ui_url=ui_url)).text.splitlines()


@pytest.mark.parametrize("kind", list(StopKind))
def test_the_alert_says_to_re_execute_from_failure(kind):
    text = build_alert(stopped(kind=kind)).text
    assert "re-execute the run from failure" in text
    assert f"python -m passport_pipeline.cli.reexecute {RUN_ID}" in text


def test_a_run_without_a_month_still_alerts():
    alert = build_alert(stopped(month=None))
    assert alert.subject == "Passport covers (no month): the run failed"


def test_slack_text_puts_the_subject_in_bold_above_the_text():
    alert = build_alert(stopped())
    assert alert.slack_text == f"*{alert.subject}*\n{alert.text}"


QUOTA_HALT = QuotaHalt(
    "2026-10", RUN_ID, datetime(2026, 12, 7, 15, 30, tzinfo=PACIFIC).timestamp(), 0.0
)
RESUME_AT = datetime(2026, 12, 8, 0, 1, tzinfo=PACIFIC).timestamp()


def test_a_daily_quota_halt_says_when_the_month_resumes_by_itself():
    halt = replace(QUOTA_HALT, resume_at=RESUME_AT)
    quota = decide(halt, halt.halted_at, resumes_done=1, most=3)
    reason = "Gemini's daily quota is used up, not retried in this run (429 RESOURCE_EXHAUSTED)"
    text = build_alert(stopped(kind=StopKind.HALTED, halt_reason=reason, quota=quota)).text
    assert (
        "Daily quota: 2026-10: run 0f1e2d3c-aaaa-bbbb-cccc-123456789abc halted on the daily "
        "quota; resumes by itself at 2026-12-08 17:01 KST (08:01 UTC, 2026-12-08 00:01 PST "
        "Pacific) (automatic resume 2 of 3)." in text
    )
    assert "What to do: nothing, the month goes on by itself then" in text
    assert "Fix the cause above first" not in text


def test_a_daily_quota_halt_past_the_resumes_says_a_person_is_needed():
    halt = replace(QUOTA_HALT, resume_at=RESUME_AT)
    quota = decide(halt, halt.halted_at, resumes_done=3, most=3)
    text = build_alert(stopped(kind=StopKind.HALTED, quota=quota)).text
    assert "the month's 3 automatic resumes are used up: a person is needed" in text
    assert "re-execute the run from failure" in text
    assert "goes on by itself" not in text
