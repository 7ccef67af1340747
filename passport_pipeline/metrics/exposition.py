"""The metrics the exporter serves, by name, label and meaning (README, Monitoring), built from
a reader's snapshot at each scrape.

No label holds a user id, a run id or anything else that grows without bound: months (one a
month), states, paths, answer classes, pools, and the few Gemini batches of a month.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector

from passport_pipeline.domain.gemini_responses import RESPONSE_CLASSES
from passport_pipeline.metrics.facts import MONTH_STATES, PAID_PATHS
from passport_pipeline.metrics.reader import Snapshot

# Every metric family the exporter serves (the dashboard's test checks its queries name only
# these). Counter families are listed without prometheus_client's ``_total`` suffix.
METRICS = {
    "passport_month_users": "Users of a month by state (stopped is part of remaining).",
    "passport_images_paid": "Covers paid for, by month and path (direct, batch, fallback).",
    "passport_cost_usd": "Estimated spend on the image model, by month.",
    "passport_gemini_in_flight": "Users whose cover is being generated now.",
    "passport_pool_slots": "The pool's slots: its limit and those in use.",
    "passport_gemini_responses": "Gemini's answers to paid calls, by class.",
    "passport_gemini_latency_seconds": "Seconds one generation took (a direct call).",
    "passport_month_last_success_timestamp_seconds": "When the month was last materialized.",
    "passport_batch_state": "A month's open Gemini batches (1 for the batch's state).",
    "passport_alerts_pending": "Alert channels that have not yet delivered a run's alert.",
    "passport_month_budget_usd": "PASSPORT_MONTH_BUDGET_USD, for the spend alert.",
}


def families(snapshot: Snapshot, budget_usd: float | None) -> Iterator:
    """The metric families of one scrape."""
    users = GaugeMetricFamily(
        "passport_month_users", METRICS["passport_month_users"], labels=["month", "state"]
    )
    paid = CounterMetricFamily(
        "passport_images_paid", METRICS["passport_images_paid"], labels=["month", "path"]
    )
    cost = CounterMetricFamily("passport_cost_usd", METRICS["passport_cost_usd"], labels=["month"])
    for month in sorted(snapshot.months):
        for state in MONTH_STATES:
            if state in snapshot.months[month]:
                users.add_metric([month, state], snapshot.months[month][state])
        for path in PAID_PATHS:
            paid.add_metric([month, path], snapshot.paid[month].get(path, 0))
        cost.add_metric([month], snapshot.cost[month])
    yield from (users, paid, cost)

    yield GaugeMetricFamily(
        "passport_gemini_in_flight", METRICS["passport_gemini_in_flight"], snapshot.in_flight
    )
    pool = GaugeMetricFamily(
        "passport_pool_slots", METRICS["passport_pool_slots"], labels=["pool", "state"]
    )
    for name, (limit, used) in sorted(snapshot.pool.items()):
        pool.add_metric([name, "limit"], limit)
        pool.add_metric([name, "used"], used)
    yield pool

    responses = CounterMetricFamily(
        "passport_gemini_responses", METRICS["passport_gemini_responses"], labels=["class"]
    )
    for name in RESPONSE_CLASSES:
        responses.add_metric([name], snapshot.responses.get(name, 0))
    yield responses
    yield HistogramMetricFamily(
        "passport_gemini_latency_seconds",
        METRICS["passport_gemini_latency_seconds"],
        buckets=snapshot.latency.buckets(),
        sum_value=snapshot.latency.total,
    )

    success = GaugeMetricFamily(
        "passport_month_last_success_timestamp_seconds",
        METRICS["passport_month_last_success_timestamp_seconds"],
        labels=["month"],
    )
    for month, timestamp in sorted(snapshot.last_success.items()):
        success.add_metric([month], timestamp)
    yield success
    batches = GaugeMetricFamily(
        "passport_batch_state",
        METRICS["passport_batch_state"],
        labels=["month", "batch", "state"],
    )
    for batch in snapshot.batches:
        batches.add_metric([batch.month, batch.name, batch.state or "unknown"], 1)
    yield batches
    yield GaugeMetricFamily(
        "passport_alerts_pending", METRICS["passport_alerts_pending"], snapshot.alerts_pending
    )
    if budget_usd is not None:
        yield GaugeMetricFamily(
            "passport_month_budget_usd", METRICS["passport_month_budget_usd"], budget_usd
        )


class PassportCollector(Collector):
    """Reads what is new in the instance at every scrape."""

    def __init__(self, read, budget_usd: float | None):
        self._read = read  # () -> Snapshot
        self._budget_usd = budget_usd

    def collect(self) -> Iterator:
        yield from families(self._read(), self._budget_usd)
