"""Whole-job runs in process on the local image model and store (sqlite and PostgreSQL)."""

from __future__ import annotations

import pytest
from dagster import (
    AssetKey,
    AssetRecordsFilter,
    DagsterEventType,
    DagsterInstance,
    Failure,
    build_op_context,
    build_run_status_sensor_context,
    materialize,
)

from passport_pipeline.covers.asset import build_covers_asset
from passport_pipeline.covers.plan import MonthPlan
from passport_pipeline.covers.policies import COVER_STEP_RETRIES, cover_retry_policy
from passport_pipeline.covers.record import record_month
from passport_pipeline.definitions import defs
from passport_pipeline.domain.images import inspect_image
from passport_pipeline.domain.records import CoverRecord, CoverStatus
from passport_pipeline.resources.cover_keys import CoverKeys
from passport_pipeline.resources.image_store import LocalImageStore
from passport_pipeline_tests.support.dataset import UserRow, cover_urls, october, write_dataset
from passport_pipeline_tests.support.launch import local_resources_for

USERS = [
    UserRow(1, visits=[(1, october(3)), (2, october(4))]),
    UserRow(2, visits=[(3, october(5)), (4, october(6)), (5, october(7))]),
    UserRow(3, title=None),  # no passport
    UserRow(4, visits=[(1, october(1).replace(month=9))]),  # September only
]


# The production asset, with retry delays short enough for a test suite.
covers = build_covers_asset(cover_retry_policy(delay_s=0.05))


def run(resources: dict, instance: DagsterInstance, month: str = "2026-10", **config):
    return materialize(
        [covers],
        resources=resources,
        instance=instance,
        partition_key=month,
        run_config={"ops": {"passport_covers": {"config": config}}} if config else None,
        raise_on_error=False,
    )


def month_metadata(result) -> dict:
    [materialization] = result.asset_materializations_for_node("passport_covers")
    return {key: value.value for key, value in materialization.metadata.items()}


def outputs_by_user(result) -> dict[int, dict]:
    return {
        record.user_id: record
        for record in result.output_for_node("passport_covers.generate_cover").values()
    }


def step_output_metadata(result, user_id: int) -> dict:
    """What the UI shows for a user's step output."""
    [event] = [
        event
        for event in result.all_node_events
        if event.is_successful_output
        and event.step_key == f"passport_covers.generate_cover[user_{user_id}]"
    ]
    return {key: value.value for key, value in event.step_output_data.metadata.items()}


def error_chain(error) -> str:
    """The messages of a step's error and of every error that caused it."""
    messages = []
    while error is not None:
        messages.append(error.message)
        error = error.cause
    return "\n".join(messages)


def assert_every_cover_url_exists(url: str, store: LocalImageStore) -> None:
    for user_id, cover_url in cover_urls(url).items():
        assert cover_url is None or store.exists_at(cover_url), (user_id, cover_url)


def test_month_run_covers_every_visitor(app_db_url, local_resources, instance):
    write_dataset(app_db_url, USERS)
    result = run(local_resources, instance)
    assert result.success
    urls = cover_urls(app_db_url)
    assert urls[1] and urls[2]
    assert urls[4] is None  # visited in September only
    store = local_resources["image_store"]
    for user_id in (1, 2):
        record = outputs_by_user(result)[user_id]
        assert record.status == "generated" and record.url == urls[user_id]
        with open(store._path(record.key), "rb") as cover:
            assert inspect_image(cover.read()).mime_type == "image/png"
    metadata = month_metadata(result)
    counts = ("month", "total", "generated", "reused", "skipped", "failed", "estimated_cost_usd")
    assert {key: metadata[key] for key in counts} == {
        "month": "2026-10",
        "total": 2,
        "generated": 2,
        "reused": 0,
        "skipped": 0,
        "failed": 0,
        "estimated_cost_usd": 0.0,
    }
    # Covers kept on this machine show in the UI as data: thumbnails (test_ui.py: in a browser).
    preview = metadata["preview"]
    for user_id in (1, 2):
        assert f"![cover of user {user_id}](data:image/jpeg;base64," in preview
        step = step_output_metadata(result, user_id)
        assert step["cover"] == str(store._path(outputs_by_user(result)[user_id].key))
        assert step["cover_preview"].startswith("![cover](data:image/jpeg;base64,")
    assert_every_cover_url_exists(app_db_url, store)


def test_explicit_user_ids_skip_with_reasons_and_list_unknown_ids(
    app_db_url, local_resources, instance
):
    write_dataset(app_db_url, USERS)
    result = run(local_resources, instance, user_ids=[1, 3, 4, 999, 1])
    assert result.success
    records = outputs_by_user(result)
    assert records[1].status == "generated"
    assert (records[3].status, records[3].reason) == ("skipped", "user has no passport")
    assert (records[4].status, records[4].reason) == ("skipped", "no visits in 2026-10")
    # A run of listed users never marks the month done: its summary is an observation.
    assert result.asset_materializations_for_node("passport_covers") == []
    [observation] = [
        event.asset_observation_data.asset_observation
        for event in result.all_events
        if event.event_type is DagsterEventType.ASSET_OBSERVATION
        and "run_status" in event.asset_observation_data.asset_observation.metadata
    ]
    metadata = {key: value.value for key, value in observation.metadata.items()}
    assert observation.partition == "2026-10"
    assert metadata["run_status"] == "listed users only"
    assert metadata["unknown_user_ids"] == [999]
    assert (metadata["total"], metadata["generated"], metadata["skipped"]) == (3, 1, 2)
    assert not instance.get_materialized_partitions(AssetKey("passport_covers"))
    assert cover_urls(app_db_url)[2] is None  # not asked for


def test_second_run_reuses_stored_covers_and_relinks(app_db_url, local_resources, instance):
    write_dataset(app_db_url, USERS)
    first = run(local_resources, instance)
    store = local_resources["image_store"]
    path = store._path(outputs_by_user(first)[1].key)
    written_at = path.stat().st_mtime_ns
    # The app cleared a cover: the next run relinks it without drawing a new one.
    write_dataset(app_db_url, USERS)
    second = run(local_resources, instance)
    assert second.success
    assert {r.status for r in outputs_by_user(second).values()} == {"reused"}
    assert path.stat().st_mtime_ns == written_at
    assert cover_urls(app_db_url)[1] == outputs_by_user(first)[1].url
    assert month_metadata(second)["reused"] == 2


def test_force_regenerates(app_db_url, local_resources, instance):
    write_dataset(app_db_url, USERS)
    run(local_resources, instance)
    forced = run(local_resources, instance, force_regenerate=True)
    assert {r.status for r in outputs_by_user(forced).values()} == {"generated"}


def test_a_failed_upload_leaves_the_passport_untouched(
    app_db_url, local_resources, instance, tmp_path
):
    write_dataset(app_db_url, USERS)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the store's folder should be")
    resources = local_resources_for(local_resources["app_db"].url, blocker)
    result = run(resources, instance)
    assert not result.success

    def steps(event_type):
        return sorted(e.step_key for e in result.all_events if e.event_type == event_type)

    assert steps(DagsterEventType.STEP_FAILURE) == [
        "passport_covers.generate_cover[user_1]",
        "passport_covers.generate_cover[user_2]",
    ]
    assert len(steps(DagsterEventType.STEP_UP_FOR_RETRY)) == 2 * COVER_STEP_RETRIES
    assert set(cover_urls(app_db_url).values()) == {None}


def test_month_with_no_visitors_still_records_the_month(app_db_url, local_resources, instance):
    write_dataset(app_db_url, USERS)
    result = run(local_resources, instance, month="2026-08")
    assert result.success
    assert month_metadata(result)["total"] == 0


def test_unreachable_database_fails_the_first_step_with_a_clear_message(tmp_path, instance):
    resources = local_resources_for(
        "postgresql+psycopg2://postgres@127.0.0.1:5999/app", tmp_path / "store"
    )
    result = run(resources, instance)
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE]
    assert failure.step_key == "passport_covers.month_users"
    assert "cannot reach the app database at postgresql+psycopg2://postgres@127.0.0.1:5999/app" in (
        error_chain(failure.step_failure_data.error)
    )


@pytest.mark.parametrize("key", ["2026-13", "2023-12"])
def test_partition_outside_the_months_is_refused(local_resources, instance, key):
    with pytest.raises(Exception, match=f"partition with key `{key}`"):
        run(local_resources, instance, month=key)


def test_a_failed_run_records_its_counts_on_the_month(sqlite_url, tmp_path, instance):
    write_dataset(sqlite_url, USERS)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the store's folder should be")
    resources = local_resources_for(sqlite_url, blocker)
    result = run(resources, instance, user_ids=[1, 2, 3])
    assert not result.success
    [run_failure] = [e for e in result.all_events if e.event_type == DagsterEventType.RUN_FAILURE]
    sensor = defs.resolve_sensor_def("monthly_passport_covers_failures")
    context = build_run_status_sensor_context(
        sensor_name=sensor.name,
        dagster_event=run_failure,
        dagster_instance=instance,
        dagster_run=instance.get_run_by_id(result.run_id),
    )
    sensor(context)
    observations = instance.fetch_observations(
        AssetRecordsFilter(asset_key=AssetKey("passport_covers"), asset_partitions=["2026-10"]),
        limit=1,
    ).records
    metadata = {k: v.value for k, v in observations[0].asset_observation.metadata.items()}
    assert (metadata["total"], metadata["failed"], metadata["skipped"]) == (3, 2, 1)
    assert metadata["run_id"] == result.run_id
    # The month over all its runs (a run of listed users is not the month's total), and the
    # run to re-execute.
    assert (metadata["month_failed"], metadata["month_spend_usd"]) == (2, 0.0)
    month = ("month_covered", "month_stopped", "month_total", "month_remaining")
    assert [metadata[key] for key in month] == [0, 0, "unknown", "unknown"]
    assert metadata["reexecute"] == f"python -m passport_pipeline.cli.reexecute {result.run_id}"


def test_an_older_month_never_moves_a_passport_backwards(app_db_url, local_resources, instance):
    both = UserRow(1, visits=[(1, october(3)), (2, october(3).replace(month=9))])
    september_only = UserRow(2, visits=[(3, october(5).replace(month=9))])
    write_dataset(app_db_url, [both, september_only])
    assert run(local_resources, instance, month="2026-10").success
    october_cover = cover_urls(app_db_url)[1]
    assert "/covers/2026-10/" in october_cover
    # A backfill of September, after October: its covers are drawn and stored...
    september = run(local_resources, instance, month="2026-09")
    assert september.success
    records = outputs_by_user(september)
    assert {r.status for r in records.values()} == {"generated"}
    # ...but a passport that shows October's cover keeps it; one with none gets September's.
    urls = cover_urls(app_db_url)
    assert urls[1] == october_cover
    assert urls[2] == records[2].url and "/covers/2026-09/" in urls[2]
    linked = {
        event.step_key: event.step_output_data.metadata["linked"].value
        for event in september.all_events
        if event.event_type == DagsterEventType.STEP_OUTPUT
        and event.step_key != "passport_covers.month_users"
        and "linked" in event.step_output_data.metadata
    }
    assert linked == {
        "passport_covers.generate_cover[user_1]": False,
        "passport_covers.generate_cover[user_2]": True,
    }
    # The month's summary does not count a kept later cover as a relink either.
    again = run(local_resources, instance, month="2026-09")
    assert month_metadata(again)["reused"] == 2
    assert cover_urls(app_db_url)[1] == october_cover


@pytest.mark.parametrize("secret", ["short", "fifteen-chars!!"])
def test_a_weak_key_secret_stops_the_run_before_any_user_step(
    sqlite_url, tmp_path, instance, secret
):
    write_dataset(sqlite_url, USERS)
    resources = {
        **local_resources_for(sqlite_url, tmp_path / "store"),
        "cover_keys": CoverKeys(secret=secret),
    }
    result = run(resources, instance)
    assert not result.success
    failures = [e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE]
    assert [e.step_key for e in failures] == ["passport_covers.month_users"]
    assert "PASSPORT_KEY_SECRET" in failures[0].step_failure_data.error.message
    started = [e.step_key for e in result.all_events if e.event_type == DagsterEventType.STEP_START]
    assert started == ["passport_covers.month_users"]
    assert [
        e for e in result.all_events if e.event_type == DagsterEventType.STEP_UP_FOR_RETRY
    ] == []


def test_a_month_with_users_unaccounted_for_is_not_recorded_as_done(sqlite_url, tmp_path, instance):
    write_dataset(sqlite_url, USERS)
    resources = local_resources_for(sqlite_url, tmp_path / "store")
    plan = MonthPlan("2026-10", [1, 2, 7, 9], [])
    records = [CoverRecord(1, "2026-10", CoverStatus.SKIPPED, reason="no visits in 2026-10")]
    with (
        build_op_context(resources=resources, instance=instance) as context,
        pytest.raises(Failure) as raised,
    ):
        list(record_month(context, plan, records))
    message = raised.value.description
    assert "3 of 4 planned users of 2026-10 have neither a cover nor a failure" in message
    assert "users 2, 7, 9" in message and "Launch the month 2026-10 again" in message
    assert raised.value.metadata["missing_user_ids"].value == [2, 7, 9]
