"""The exporter's reading of an instance: a month run in process against the Gemini fake (whose
own records are the paid calls), read incrementally, and read again by a fresh reader as an
exporter restarted would."""

from __future__ import annotations

import pytest
from dagster import DagsterInstance
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from passport_pipeline.covers.asset import build_covers_asset
from passport_pipeline.covers.batch_ledger import BatchRecord, record_batch
from passport_pipeline.covers.policies import cover_retry_policy
from passport_pipeline.metrics.exposition import PassportCollector
from passport_pipeline.metrics.reader import InstanceReader
from passport_pipeline.resources.gemini import GeminiImageModel
from passport_pipeline_tests.support.dataset import UserRow, october, write_dataset
from passport_pipeline_tests.support.fake_gemini import FakeGemini, Reply
from passport_pipeline_tests.support.gemini_deployment import GEMINI_TEST_KEY, gemini_fake
from passport_pipeline_tests.support.launch import local_resources_for, materialize_month

PRICE = 0.039
USERS = [UserRow(i, title=f"Trip {i:03d}", visits=[(1 + i % 5, october(9))]) for i in range(1, 5)]
covers = build_covers_asset(cover_retry_policy(delay_s=0.05))


@pytest.fixture
def gemini() -> FakeGemini:
    yield from gemini_fake()


@pytest.fixture
def resources(sqlite_url, tmp_path, gemini) -> dict:
    write_dataset(sqlite_url, USERS)
    model = GeminiImageModel(
        api_key=GEMINI_TEST_KEY,
        base_url=gemini.base_url,
        price_per_image_usd=PRICE,
        initial_backoff_s=0,
        pacing=False,  # a 429 would slow the pace: not what this test is about
    )
    return {**local_resources_for(sqlite_url, tmp_path / "store"), "image_model": model}


def test_a_month_is_read_as_the_fake_saw_it_and_a_restart_reads_the_same(
    resources, instance: DagsterInstance, gemini
):
    gemini.script([Reply.rate_limited("0s"), Reply.ok()], prompt_contains="Trip 001")
    gemini.script([Reply.no_image("IMAGE_SAFETY")], prompt_contains="Trip 002")
    reader = InstanceReader(instance, pools=("gemini",))
    before = reader.snapshot()
    assert before.months == {} and before.responses.total() == 0

    assert materialize_month(covers, resources, instance, "2026-10").success
    seen = reader.snapshot()

    outcomes = gemini.stats()["outcomes"]
    assert seen.months["2026-10"] == {
        "planned": 4,
        "covered": 3,
        "failed": 0,
        "refused": 1,
        "skipped": 0,
        "remaining": 0,
        "stopped": 0,
    }
    assert seen.paid["2026-10"] == {"direct": outcomes["image"]} == {"direct": 3}
    assert seen.cost["2026-10"] == pytest.approx(3 * PRICE)
    assert dict(seen.responses) == {"ok": 3, "rate_limited": 1, "refused": 1}
    assert seen.latency.count == 3
    assert seen.in_flight == 0
    assert "2026-10" in seen.last_success
    assert seen.pool["gemini"][1] == 0  # no slot held after the run
    # Every ended run was read to its end: the next scrape reads none of its events again.
    assert all(state.drained for state in reader.runs.values())

    # A re-run reuses every cover (nothing paid) and asks again for the refused user; a
    # restarted exporter rebuilds the same counts from the records.
    assert materialize_month(covers, resources, instance, "2026-10").success
    again = reader.snapshot()
    restarted = InstanceReader(instance, pools=("gemini",)).snapshot()
    outcomes = gemini.stats()["outcomes"]
    assert outcomes == {"image": 3, "error": 1, "no_image": 2}
    for snapshot in (again, restarted):
        assert snapshot.paid == seen.paid
        assert dict(snapshot.responses) == {"ok": 3, "rate_limited": 1, "refused": 2}
        assert snapshot.months["2026-10"]["covered"] == 3
    assert again.last_success["2026-10"] > seen.last_success["2026-10"]
    assert restarted.last_success == again.last_success
    assert_bounded_labels(again)


def assert_bounded_labels(snapshot) -> None:
    """No label of any sample grows with the users (or runs): only months, states, paths,
    classes, pools, batches and the histogram's buckets."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PassportCollector(lambda: snapshot, budget_usd=None))
    text = generate_latest(registry).decode()
    samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
    assert {name for s in samples for name in s.labels} == {
        "month",
        "state",
        "path",
        "class",
        "pool",
        "le",
    }
    assert "user" not in text.replace("passport_month_users", "")


def test_a_months_open_batches_are_served_until_their_results_run_takes_them(
    instance: DagsterInstance,
):
    # The ledger's entries as the batch poller writes them (the sensor's runless observations).
    record = BatchRecord("batches/abc123", "2026-10", "JOB_STATE_PENDING", user_ids=[1, 2])
    record_batch(instance, record, first=True)
    reader = InstanceReader(instance)
    [pending] = reader.snapshot().batches
    assert (pending.month, pending.name, pending.state) == (
        "2026-10",
        "batches/abc123",
        "JOB_STATE_PENDING",
    )
    record.state = "JOB_STATE_RUNNING"
    record_batch(instance, record)
    assert [b.state for b in reader.snapshot().batches] == ["JOB_STATE_RUNNING"]
    record_batch(instance, record, closed=True)
    assert reader.snapshot().batches == []
    assert InstanceReader(instance).snapshot().batches == []  # and so after a restart
