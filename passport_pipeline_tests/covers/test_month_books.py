"""A month is materialized only by a run of all its users, and its summary counts what every
run of the month paid (in process, Gemini's protocol against the local fake, whose requests are
the paid calls)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from dagster import AssetKey, DagsterEventType

from passport_pipeline.covers.asset import build_covers_asset
from passport_pipeline.covers.policies import cover_retry_policy
from passport_pipeline.covers.progress import month_progress
from passport_pipeline.resources.gemini import GeminiImageModel
from passport_pipeline_tests.support.dataset import UserRow, october, write_dataset
from passport_pipeline_tests.support.fake_gemini import FakeGemini, Reply
from passport_pipeline_tests.support.gemini_deployment import (
    GEMINI_TEST_KEY,
    gemini_fake,
)
from passport_pipeline_tests.support.launch import local_resources_for, materialize_month

PRICE = 0.039
USERS = [UserRow(i, title=f"Trip {i:03d}", visits=[(1 + i % 5, october(9))]) for i in range(1, 5)]
covers = build_covers_asset(cover_retry_policy(delay_s=0.05))


@pytest.fixture
def gemini() -> Iterator[FakeGemini]:
    yield from gemini_fake()


@pytest.fixture
def resources(sqlite_url, tmp_path, gemini) -> dict:
    write_dataset(sqlite_url, USERS)
    model = GeminiImageModel(
        api_key=GEMINI_TEST_KEY, base_url=gemini.base_url, price_per_image_usd=PRICE
    )
    return {**local_resources_for(sqlite_url, tmp_path / "store"), "image_model": model}


def observations(result) -> list[dict]:
    return [
        {
            key: value.value
            for key, value in event.asset_observation_data.asset_observation.metadata.items()
        }
        for event in result.all_events
        if event.event_type is DagsterEventType.ASSET_OBSERVATION
    ]


def test_a_run_of_listed_users_leaves_the_month_missing_and_the_month_run_counts_all_spend(
    resources, instance, gemini
):
    listed = materialize_month(
        covers,
        resources,
        instance,
        "2026-10",
        {"ops": {"passport_covers": {"config": {"user_ids": [1, 2]}}}},
    )
    assert listed.success
    assert listed.asset_materializations_for_node("passport_covers") == []
    assert not instance.get_materialized_partitions(AssetKey("passport_covers"))
    [partial] = [o for o in observations(listed) if o.get("run_status") == "listed users only"]
    assert (partial["total"], partial["generated"]) == (2, 2)
    assert gemini.generate_requests == 2

    month = materialize_month(covers, resources, instance, "2026-10")
    assert month.success
    assert instance.get_materialized_partitions(AssetKey("passport_covers")) == {"2026-10"}
    [materialization] = month.asset_materializations_for_node("passport_covers")
    summary = {key: value.value for key, value in materialization.metadata.items()}
    assert (summary["total"], summary["generated"], summary["reused"]) == (4, 2, 2)
    assert gemini.generate_requests == 4  # each user paid once, over both runs
    # This run's cost, and the month's over both runs: every paid call.
    assert summary["estimated_cost_usd"] == pytest.approx(2 * PRICE)
    assert summary["month_spend_usd"] == pytest.approx(gemini.generate_requests * PRICE)
    assert (summary["month_total"], summary["month_covered"], summary["month_remaining"]) == (
        4,
        4,
        0,
    )


def test_unusable_answers_are_in_the_cost_and_the_failed_month_stays_unmaterialized(
    resources, instance, gemini
):
    gemini.script([Reply.corrupt_image()], prompt_contains=USERS[0].title)
    result = materialize_month(covers, resources, instance, "2026-10")
    assert not result.success
    assert not instance.get_materialized_partitions(AssetKey("passport_covers"))
    assert gemini.requests_for(USERS[0].title) == 2  # asked again once, then given up
    books = month_progress(instance, "2026-10")
    assert (books.completed, books.failed, books.remaining) == (3, 1, 0)
    # Every paid call, the two unusable answers included.
    assert books.estimated_cost_usd == pytest.approx(gemini.generate_requests * PRICE)
