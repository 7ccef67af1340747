"""A month through Gemini's Batch API, in process: the month's run submits one batch, the
sensor's ticks (evaluated as the daemon evaluates them) follow it and request the results run,
which stores every answered user's cover. Gemini is the local fake, over HTTP."""

from __future__ import annotations

import threading

import pytest
from dagster import (
    AssetKey,
    DagsterEventType,
    DagsterInstance,
    Definitions,
    build_run_status_sensor_context,
    build_sensor_context,
)

from passport_pipeline.covers.asset import build_covers_asset, covers_job
from passport_pipeline.covers.batch import cancel_open_batches
from passport_pipeline.covers.batch_ledger import BATCH_TAG, month_batches
from passport_pipeline.covers.batch_sensor import batch_sensors
from passport_pipeline.covers.policies import cover_retry_policy
from passport_pipeline.resources.gemini_batch import GeminiBatchImageModel
from passport_pipeline_tests.support.dataset import UserRow, cover_urls, october, write_dataset
from passport_pipeline_tests.support.fake_gemini import FakeGemini, Reply
from passport_pipeline_tests.support.launch import local_resources_for, materialize_month

MONTH = "2026-10"
USERS = [
    UserRow(1, visits=[(1, october(3)), (2, october(4))]),  # Seoul
    UserRow(2, visits=[(3, october(5))]),  # Haeundae Beach, Busan
    UserRow(3, title=None),  # no passport: never submitted
    UserRow(4, visits=[(4, october(6))]),
    UserRow(5, visits=[(5, october(7))]),
]
SUBMITTED = [1, 2, 4, 5]
covers = build_covers_asset(cover_retry_policy(delay_s=0.05))
poll, cancel_sensor = batch_sensors(covers_job, poll_interval_s=1)


@pytest.fixture
def gemini():
    with FakeGemini() as server:
        yield server


def batch_model(server: FakeGemini, **fields) -> GeminiBatchImageModel:
    return GeminiBatchImageModel(
        api_key="test-key", base_url=server.base_url, initial_backoff_s=0.01, **fields
    )


@pytest.fixture
def resources(gemini, sqlite_url, tmp_path) -> dict:
    write_dataset(sqlite_url, USERS)
    return {
        **local_resources_for(sqlite_url, tmp_path / "store"),
        "image_model": batch_model(gemini),
    }


def launch(resources: dict, instance: DagsterInstance, run_config=None, tags=None):
    """A launch of the month, as the schedule, the UI or the sensor makes it."""
    return materialize_month(covers, resources, instance, MONTH, run_config, tags)


def tick(instance: DagsterInstance, resources: dict, cursor: str | None):
    definitions = Definitions(
        assets=[covers], jobs=[covers_job], sensors=[poll], resources=resources
    )
    with build_sensor_context(
        instance=instance, cursor=cursor, resources=resources, definitions=definitions
    ) as context:
        return poll.evaluate_tick(context)


def step_failures(instance: DagsterInstance, run_id: str) -> dict[str, str]:
    return {
        entry.step_key: entry.dagster_event.step_failure_data.error.message
        for entry in instance.all_logs(run_id, of_type=DagsterEventType.STEP_FAILURE)
    }


def test_a_month_through_one_batch_pays_half_and_names_a_user_the_batch_refused(
    gemini, resources, instance, sqlite_url
):
    gemini.script([Reply.error(400, "Request contains an invalid argument.")], endpoint="batch",
                  prompt_contains="Haeundae")  # fmt: skip
    submit = launch(resources, instance)
    assert submit.success
    [name] = gemini.batches.names()
    assert [key for key, _ in gemini.batches.batches[name].requests] == [
        f"user_{u}" for u in SUBMITTED
    ]
    assert not submit.asset_materializations_for_node("passport_covers")  # not done yet
    assert "PENDING" in instance.get_run_by_id(submit.run_id).tags[BATCH_TAG]
    # A second launch while the batch is pending submits nothing more.
    assert launch(resources, instance).success
    assert gemini.batches.names() == [name] and gemini.batches.calls["create"] == 1

    first = tick(instance, resources, None)
    assert not first.run_requests and "PENDING" in first.skip_message
    gemini.batches.run(name, answered=2)
    running = tick(instance, resources, first.cursor)
    assert not running.run_requests
    assert "RUNNING: 2 of 4 answered (2 pending)" in instance.get_run_by_id(submit.run_id).tags[
        BATCH_TAG
    ]  # fmt: skip
    assert month_batches(instance, MONTH)[name].state == "RUNNING"

    gemini.batches.finish(name)
    done = tick(instance, resources, running.cursor)
    [request] = done.run_requests
    assert request.partition_key == MONTH and request.run_key == f"batch-results:{name}"
    # Asked again (a retried tick, a restarted daemon), the sensor requests nothing more.
    assert not tick(instance, resources, done.cursor).run_requests

    results = launch(resources, instance, request.run_config, request.tags)
    assert not results.success  # user 2 failed, by name; the others are linked
    failures = step_failures(instance, results.run_id)
    assert list(failures) == ["passport_covers.generate_cover[user_2]"]
    message = failures["passport_covers.generate_cover[user_2]"]
    assert "user 2" in message and "error (INVALID_ARGUMENT: " in message and name in message
    urls = cover_urls(sqlite_url)
    assert all(urls[u] for u in (1, 4, 5)) and urls[2] is None and 3 not in urls
    assert gemini.generate_requests == 0  # not one direct, full-price call
    assert gemini.batches.paid_images() == {"batch": 3}
    outputs = results.output_for_node("passport_covers.generate_cover")
    assert {o.path for o in outputs.values() if o.url} == {"batch"}
    assert sum(o.estimated_cost_usd for o in outputs.values()) == pytest.approx(3 * 0.0195)
    assert month_batches(instance, MONTH)[name].closed

    # The refused user through the normal path: one direct call, then the month is whole.
    direct = launch(resources, instance, {"ops": {"passport_covers": {"config": {
        "user_ids": [2], "direct": True}}}})  # fmt: skip
    assert direct.success and gemini.generate_requests == 1 and cover_urls(sqlite_url)[2]
    again = launch(resources, instance)
    assert again.success and gemini.batches.calls["create"] == 1  # every cover is stored
    [summary] = again.asset_materializations_for_node("passport_covers")
    assert summary.metadata["reused"].value == 4 and summary.metadata["failed"].value == 0


def test_a_user_the_model_refuses_inside_a_batch_ends_as_refused_and_the_month_is_done(
    gemini, resources, instance, sqlite_url
):
    gemini.script([Reply.no_image("IMAGE_SAFETY")], endpoint="batch", prompt_contains="Haeundae")
    assert launch(resources, instance).success
    [name] = gemini.batches.names()
    gemini.batches.finish(name)
    [request] = tick(instance, resources, None).run_requests
    results = launch(resources, instance, request.run_config, request.tags)
    # As on the direct path: the refusal is user 2's outcome, with its reason; no failed step.
    assert results.success and step_failures(instance, results.run_id) == {}
    outputs = results.output_for_node("passport_covers.generate_cover")
    assert (outputs["user_2"].status, outputs["user_2"].reason) == ("refused", "IMAGE_SAFETY")
    [summary] = results.asset_materializations_for_node("passport_covers")
    assert (summary.metadata["generated"].value, summary.metadata["refused"].value) == (3, 1)
    assert summary.metadata["cover_paths"].value == {"batch": 3}
    assert gemini.generate_requests == 0 and cover_urls(sqlite_url)[2] is None


def test_a_batch_for_listed_users_covers_them_and_never_marks_the_month_done(
    gemini, resources, instance, sqlite_url
):
    listed = {"ops": {"passport_covers": {"config": {"user_ids": [1, 2]}}}}
    assert launch(resources, instance, listed).success
    [name] = gemini.batches.names()
    assert [key for key, _ in gemini.batches.batches[name].requests] == ["user_1", "user_2"]
    gemini.batches.finish(name)
    [request] = tick(instance, resources, None).run_requests
    results = launch(resources, instance, request.run_config, request.tags)
    assert results.success and gemini.batches.paid_images() == {"batch": 2}
    urls = cover_urls(sqlite_url)
    assert urls[1] and urls[2] and urls[4] is None
    # Users 4 and 5 have no cover: the month stays missing, its catalog says so.
    assert not results.asset_materializations_for_node("passport_covers")
    assert not instance.get_materialized_partitions(AssetKey("passport_covers"))


def test_an_expired_batch_fails_the_month_with_what_to_do_and_a_new_launch_resubmits(
    gemini, resources, instance
):
    assert launch(resources, instance).success
    [name] = gemini.batches.names()
    gemini.batches.end(name, "EXPIRED")
    [request] = tick(instance, resources, None).run_requests
    results = launch(resources, instance, request.run_config, request.tags)
    assert not results.success
    [message] = step_failures(instance, results.run_id).values()
    assert f"{MONTH}: Gemini batch {name} ended EXPIRED" in message
    assert "launch the month again" in message and "direct: true" in message
    assert gemini.batches.paid_images() == {}
    # The month is launched again: a new batch for the same users (the expired one is closed).
    assert launch(resources, instance).success
    assert len(gemini.batches.names()) == 2
    assert gemini.batches.batches[gemini.batches.names()[1]].requests[0][0] == "user_1"


def test_a_large_month_goes_as_a_jsonl_file_and_its_results_file_is_read(
    gemini, resources, instance, sqlite_url
):
    resources = {**resources, "image_model": batch_model(gemini, inline_limit_bytes=1000)}
    assert launch(resources, instance).success
    assert gemini.batches.calls["upload"] == 1
    [name] = gemini.batches.names()
    assert gemini.batches.batches[name].from_file
    gemini.batches.finish(name)
    [request] = tick(instance, resources, None).run_requests
    results = launch(resources, instance, request.run_config, request.tags)
    assert results.success and gemini.batches.calls["download"] == 1
    assert all(cover_urls(sqlite_url)[u] for u in SUBMITTED)
    [summary] = results.asset_materializations_for_node("passport_covers")
    assert summary.metadata["cover_paths"].value == {"batch": 4}
    assert summary.metadata["estimated_cost_usd"].value == pytest.approx(4 * 0.0195)


def test_terminating_the_month_cancels_its_pending_batch(gemini, resources, instance):
    submit = launch(resources, instance)
    assert submit.success
    [name] = gemini.batches.names()
    # The run-status sensor as the daemon calls it for a terminated run of the month.
    [event] = instance.all_logs(submit.run_id, of_type=DagsterEventType.RUN_SUCCESS)
    with build_run_status_sensor_context(
        sensor_name=cancel_sensor.name,
        dagster_event=event.dagster_event,
        dagster_instance=instance,
        dagster_run=instance.get_run_by_id(submit.run_id),
        resources={"image_model": resources["image_model"]},
    ) as context:
        assert f"cancelled ['{name}']" in cancel_sensor(context).skip_message
    assert gemini.batches.calls["cancel"] == 1
    assert gemini.batches.batches[name].state == "CANCELLED"
    [request] = tick(instance, resources, None).run_requests
    results = launch(resources, instance, request.run_config, request.tags)
    [message] = step_failures(instance, results.run_id).values()
    assert "ended CANCELLED" in message and "launch the month again" in message
    assert cancel_open_batches(instance, MONTH, resources["image_model"]) == []


def test_a_launch_after_the_batch_ended_stores_its_results_without_a_new_batch(
    gemini, resources, instance, sqlite_url
):
    assert launch(resources, instance).success
    [name] = gemini.batches.names()
    gemini.batches.finish(name)  # the sensor is off: nobody has stored the answers yet
    month = launch(resources, instance)
    assert month.success and gemini.batches.calls["create"] == 1
    assert all(cover_urls(sqlite_url)[u] for u in SUBMITTED)
    assert gemini.batches.paid_images() == {"batch": 4} and gemini.generate_requests == 0
    # The sensor, switched on later, finds the batch closed and launches nothing.
    assert not tick(instance, resources, None).run_requests


def test_a_batch_created_but_never_recorded_is_adopted_not_paid_again(
    gemini, resources, instance, sqlite_url
):
    # Gemini creates the batch but its answer never reaches the run (held past the client's
    # deadline): the create is not sent again. The step's retry finds the batch by the
    # intent's display name and adopts it.
    hold = threading.Event()
    hold.set()
    gemini.batches.hold_create_answer = hold
    impatient = {**resources, "image_model": batch_model(gemini, batch_timeout_s=1)}
    try:
        first = launch(impatient, instance)
    finally:
        hold.clear()
    assert first.success
    assert gemini.batches.calls["create"] == 1 and gemini.batches.calls["list"] >= 1
    [name] = gemini.batches.names()
    assert gemini.batches.batches[name].display_name == f"passport-covers-{MONTH}-{first.run_id}"
    record = month_batches(instance, MONTH)[name]
    assert record.user_ids == SUBMITTED and record.submit_run_id == first.run_id
    # Adopted once: the next launch neither lists nor creates.
    listed = gemini.batches.calls["list"]
    assert launch(resources, instance).success
    assert (gemini.batches.calls["create"], gemini.batches.calls["list"]) == (1, listed)

    gemini.batches.finish(name)
    assert launch(resources, instance).success  # the finished batch's results run
    assert all(cover_urls(sqlite_url)[u] for u in SUBMITTED)
    assert gemini.batches.paid_images() == {"batch": len(SUBMITTED)}
    assert gemini.generate_requests == 0


def test_a_create_that_never_reached_gemini_leaves_nothing_to_adopt(gemini, resources, instance):
    gemini.batches.fail_next(400)  # the first create is refused: no batch exists
    assert launch(resources, instance).success  # the step's retry settles it, submits anew
    assert gemini.batches.calls["fault"] == 1 and gemini.batches.calls["create"] == 1
    assert len(gemini.batches.names()) == 1 and gemini.batches.calls["list"] == 1
    assert launch(resources, instance).success and gemini.batches.calls["list"] == 1


def test_a_batch_of_unusable_answers_halts_its_results_run(gemini, sqlite_url, tmp_path, instance):
    many = [UserRow(n, visits=[(1, october(3))]) for n in range(1, 15)]
    write_dataset(sqlite_url, many)
    resources = {
        **local_resources_for(sqlite_url, tmp_path / "store"),
        "image_model": batch_model(gemini),
    }
    gemini.script([Reply.corrupt_image()], endpoint="batch")
    assert launch(resources, instance).success
    [name] = gemini.batches.names()
    gemini.batches.finish(name)
    results = launch(resources, instance)
    failures = list(step_failures(instance, results.run_id).values())
    halted = [m for m in failures if "this run was halted" in m]
    unusable = [m for m in failures if "INVALID_IMAGE" in m and name in m and m not in halted]
    assert not results.success and len(failures) == 14
    assert len(unusable) == 10 and len(halted) == 4  # the breaker's streak, then the halt
    assert gemini.batches.paid_images() == {} and gemini.generate_requests == 0
