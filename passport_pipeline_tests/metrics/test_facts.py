"""The exporter's pure folds: paid paths, latencies, answer classes, a month's user states."""

from __future__ import annotations

from collections import Counter

import pytest

from passport_pipeline.domain.gemini_protocol import Verdict
from passport_pipeline.domain.gemini_responses import (
    response_class,
    tally_from_metadata,
    tally_from_text,
    tally_metadata,
    tally_text,
)
from passport_pipeline.domain.progress import StepEvent, StepEventKind, compute_progress
from passport_pipeline.metrics.facts import (
    Histogram,
    MonthFacts,
    generation_latency,
    month_users,
    paid_path,
    refused_users,
)

S = StepEventKind


@pytest.mark.parametrize(
    ("metadata", "path"),
    [
        ({"status": "generated", "latency_s": 3.0}, "direct"),
        ({"status": "generated", "path": "batch"}, "batch"),
        ({"status": "generated", "fallback": True}, "fallback"),
        ({"status": "reused"}, None),
        ({"status": "refused", "gemini_refused": 1}, None),
        ({"status": "skipped"}, None),
    ],
)
def test_only_new_covers_are_paid_images_by_path(metadata, path):
    assert paid_path(metadata) == path


@pytest.mark.parametrize(
    ("metadata", "latency"),
    [
        ({"status": "generated", "latency_s": 3.5}, 3.5),
        ({"status": "generated", "path": "batch", "latency_s": 9.0}, None),
        ({"status": "reused", "latency_s": 1.0}, None),
        ({"status": "generated"}, None),
    ],
)
def test_latency_is_one_direct_generation(metadata, latency):
    assert generation_latency(metadata) == latency


@pytest.mark.parametrize(
    ("verdict", "name"),
    [
        (Verdict(True, "EXHAUSTED", "", status_code=429, rate_limited=True), "rate_limited"),
        (Verdict(False, "DAILY_QUOTA_EXHAUSTED", "", status_code=429), "daily_quota"),
        (Verdict(True, "UNAVAILABLE", "", status_code=503), "transient"),
        (Verdict(True, "timeout", ""), "transient"),
        (Verdict(False, "IMAGE_SAFETY", "", status_code=200), "refused"),
        (Verdict(True, "corrupt", "", status_code=200, unusable=True), "unusable"),
        (Verdict(False, "API_KEY_INVALID", "", status_code=400, halts_run=True), "permanent"),
    ],
)
def test_each_answer_without_an_image_has_one_class(verdict, name):
    assert response_class(verdict) == name


def test_a_tally_survives_metadata_and_an_error_message():
    classes = ["rate_limited", "rate_limited", "transient", "ok"]
    assert tally_from_metadata(tally_metadata(classes)) == Counter(classes)
    message = f"Gemini answered 503 (gave up after 3 attempts; {tally_text(classes[:3])})"
    assert tally_from_text(message) == Counter(classes[:3])
    assert tally_from_text("user 3: the key was refused") == Counter()


def test_refused_users_are_failed_in_progress_but_their_own_state_here():
    events = [
        StepEvent("user_1", S.START, 1.0),
        StepEvent("user_1", S.OUTPUT, 2.0, "generated", 0.039),
        StepEvent("user_1", S.SUCCESS, 2.1),
        StepEvent("user_2", S.START, 1.0),
        StepEvent("user_2", S.OUTPUT, 2.0, "refused"),
        StepEvent("user_2", S.SUCCESS, 2.1),
        StepEvent("user_3", S.START, 1.0),
        StepEvent("user_3", S.FAILURE, 2.0),
        StepEvent("user_4", S.STOPPED, 2.0),
    ]
    progress = compute_progress(5, events, 0.0, 0.0)
    assert refused_users(events) == 1
    assert month_users(progress, refused_users(events)) == {
        "planned": 5,
        "covered": 1,
        "failed": 1,
        "refused": 1,
        "skipped": 0,
        "remaining": 2,
        "stopped": 1,
    }


def test_a_month_before_its_plan_has_no_planned_or_remaining():
    progress = compute_progress(None, [], 0.0, 0.0)
    assert set(month_users(progress, 0)) == {"covered", "failed", "refused", "skipped", "stopped"}


def test_the_latest_plan_counts_and_a_dropped_run_leaves_the_month():
    facts = MonthFacts()
    facts.add_plan("a", 1.0, 10)
    facts.add_event("a", StepEvent("user_1", S.OUTPUT, 2.0, "generated", 0.5))
    facts.add_event("a", StepEvent("user_1", S.SUCCESS, 2.1))
    assert facts.users()["remaining"] == 9
    facts.add_plan("b", 3.0, 12)  # a later launch planned more users
    assert facts.users()["remaining"] == 11
    facts.drop_run("b")
    assert (facts.users()["planned"], facts.progress().estimated_cost_usd) == (10, 0.5)


def test_histogram_buckets_are_cumulative():
    histogram = Histogram(bounds=(1.0, 10.0))
    for value in (0.5, 1.0, 5.0, 50.0):
        histogram.observe(value)
    assert histogram.buckets() == [("1.0", 2), ("10.0", 3), ("+Inf", 4)]
    assert (histogram.count, histogram.total) == (4, 56.5)
