"""The deployment's pace, kept in a real database (a sqlite file as the embedded instance has,
and the PostgreSQL server) and applied by the production Gemini client against the fake,
whose quotas count what arrives. Time is a clock the test moves (the store's, the client's
waits and the fake's quota windows share it): nothing sleeps.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from dagster import DagsterExecutionInterruptedError, instance_for_test

from passport_pipeline import stop_signal
from passport_pipeline.domain import pacing
from passport_pipeline.domain.months import Month
from passport_pipeline.domain.records import CoverRequest
from passport_pipeline.resources.gemini import GeminiImageModel
from passport_pipeline.resources.pacing import (
    Outcome,
    Pacer,
    PacingStore,
    instance_database_url,
)
from passport_pipeline_tests.support.claimers import pace_race
from passport_pipeline_tests.support.deployment import Deployment
from passport_pipeline_tests.support.fake_gemini import FakeGemini, Reply
from passport_pipeline_tests.support.fake_quotas import Quotas
from passport_pipeline_tests.support.postgres import database_url, fresh_postgres_database

KEY = "pacing-key"


class Clock:
    """Seconds since the epoch that move only when told (thread-safe)."""

    def __init__(self, now: float = 1_790_000_000.0):
        self.now = now
        self.lock = threading.Lock()

    def __call__(self) -> float:
        with self.lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.now += seconds


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'passport_pacing.db'}"
        return
    with fresh_postgres_database("passport_pacing") as (name, _):
        yield database_url(name)


def paced_model(server: FakeGemini, store: PacingStore, clock: Clock, limit=None, scope="run-1"):
    model = GeminiImageModel(api_key=KEY, base_url=server.base_url, initial_backoff_s=0.01)
    # What setup_for_execution builds, on the test's clock: retries and the pace wait on it.
    model._clock = clock
    model._pacer = Pacer(store, scope, limit, clock.sleep)
    return model


def request(n: int) -> CoverRequest:
    return CoverRequest(f"A passport cover for user {n}", Month.parse("2026-10"), f"u{n}", "t", ())


def test_never_more_than_the_limit_in_any_minute_counted_at_the_fake(store_url) -> None:
    clock = Clock()
    store = PacingStore(store_url, clock)
    with FakeGemini(api_keys=[KEY]) as server:
        server.quotas = Quotas(per_minute=5, clock=clock)  # Google's window on the same clock
        model = paced_model(server, store, clock, limit=5)
        for n in range(12):
            model.generate(request(n))
        arrivals = [record.start for record in server.records]
    # Google's own window on the same clock never held a sixth request in a minute: spaced
    # 12.12 s apart, the 12 took 11 spacings.
    assert len(arrivals) == 12 and server.quotas.rejected_minute == 0
    report = store.report(5)
    assert report.pace.allowed == 5 and report.in_flight == 0
    assert clock() - 1_790_000_000.0 == pytest.approx(11 * 12.12, abs=0.5)
    store.dispose()


def test_a_429_teaches_the_quota_and_the_rate_keeps_under_it(store_url) -> None:
    clock = Clock()
    store = PacingStore(store_url, clock)
    with FakeGemini(api_keys=[KEY]) as server:
        # Google's hidden per-minute quota is 12; nothing is configured here.
        server.quotas = Quotas(per_minute=12, clock=clock)
        model = paced_model(server, store, clock)
        for n in range(60):
            model.generate(request(n))
        rejected = server.quotas.rejected_minute
        paid = server.generate_requests
    pace = store.report(None).pace
    # One 429 taught the ceiling; the client waited its RetryInfo; none came again.
    assert rejected == 1 and paid == 61
    assert (pace.ceiling, pace.slow_start, pace.allowed) == (12.0, False, 12.0)
    store.dispose()


def test_a_run_starts_narrow_and_widens_only_with_usable_answers(store_url) -> None:
    store = PacingStore(store_url, Clock())
    places = [store.try_enter("run-9", None) for _ in range(pacing.START_WIDTH)]
    assert all(places)
    assert store.try_enter("run-9", None) is None  # the width holds the fifth user
    assert store.try_enter("run-other", None)  # another run has a width of its own
    # Garbage: the attempt ends, the user leaves; the width stays as it started.
    attempt, _ = store.try_start("run-9", None)
    store.finish(attempt, "run-9", Outcome.OTHER, None)
    store.end(places[0])
    assert "run-9" not in store.report(None).widths
    assert store.try_enter("run-9", None)  # the freed place only
    assert store.try_enter("run-9", None) is None
    # A usable answer: one wider.
    attempt, _ = store.try_start("run-9", None)
    store.finish(attempt, "run-9", Outcome.USABLE, None)
    assert store.report(None).widths["run-9"] == pacing.START_WIDTH + 1
    assert store.try_enter("run-9", None)
    assert store.try_enter("run-9", None) is None
    store.dispose()


def test_the_operator_changes_the_limit_live_and_can_give_it_back_to_the_environment(
    store_url,
) -> None:
    store = PacingStore(store_url, Clock())
    assert store.report(30).pace.allowed == 30  # the environment's GEMINI_MAX_REQUESTS_...
    assert store.set_limit(7).allowed == 7
    assert store.report(30).pace.allowed == 7  # the override wins over the environment
    assert store.set_limit(None).limit is None  # no limit at all, whatever the environment
    assert store.report(30).pace.limit is None
    assert store.clear_limit(30).allowed == 7  # back to the environment's 30, rate still 7
    store.dispose()


def test_processes_starting_at_once_get_exactly_the_limit(store_url) -> None:
    # Eight processes (as many step processes or machines) ask at the same instant.
    # However many ask at the same instant, one start at a time: exactly one gets through.
    assert pace_race(store_url, racers=8, limit=5) == 1


def test_the_embedded_instance_keeps_the_pace_in_a_file_beside_its_own() -> None:
    with instance_for_test() as instance:
        url = instance_database_url(instance)
        assert url.startswith("sqlite:///") and url.endswith("/passport_pacing.db")
        assert instance.root_directory in url


def test_a_refusal_counts_as_a_working_model_and_garbage_does_not(store_url) -> None:
    clock = Clock()
    store = PacingStore(store_url, clock, start_rate=6e9)
    with FakeGemini(api_keys=[KEY]) as server:
        server.script([Reply.no_image("IMAGE_SAFETY")], prompt_contains="user 1")
        server.script([Reply.corrupt_image()], prompt_contains="user 2")
        model = paced_model(server, store, clock, scope="run-r")
        for n in (1, 2):
            with pytest.raises(Exception):  # noqa: B017 - refused, then unusable
                model.generate(request(n))
    # 1 refusal widened; 2 unusable answers did not.
    assert store.report(None).widths["run-r"] == pacing.START_WIDTH + 1
    store.dispose()


def test_a_stopped_run_waits_for_no_place(store_url) -> None:
    # A run stopped (Ctrl-C, Terminate) while its steps wait for the width ends their wait.
    store = PacingStore(store_url, Clock())
    held = [store.try_enter("run-s", None, start_width=1)]
    assert held[0] is not None
    outcome: list[BaseException] = []

    def step() -> None:
        stop = threading.Event()
        stop.set()
        stop_signal.carry(stop)
        pacer = Pacer(store, "run-s", None, stop_signal.sleep, 1, stop_signal.raise_if_stopped)
        try:
            pacer.enter()
        except BaseException as error:
            outcome.append(error)

    thread = threading.Thread(target=step)
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert [type(e) for e in outcome] == [DagsterExecutionInterruptedError]
    store.dispose()


@pytest.mark.postgres
def test_the_production_instance_keeps_the_pace_in_its_postgresql(tmp_path, instance_url) -> None:
    deployment = Deployment.create(tmp_path, instance_url)
    with deployment.instance() as instance:
        url = instance_database_url(instance)
    assert url.startswith("postgresql+psycopg2://")
    assert url.rsplit("/", 1)[-1] == instance_url.rsplit("/", 1)[-1]
    store = PacingStore(url)
    assert store.set_limit(12).allowed == 12  # the tables live there, beside the pool's
    store.dispose()


def test_step_threads_sharing_a_new_store_at_once_all_get_an_answer(store_url) -> None:
    # A run's first steps ask a brand-new deployment's store together: the tables are made
    # once, and no step fails for it (one did, retried, before the store's lock).
    store = PacingStore(store_url, Clock(), start_rate=6e9)
    barrier, errors, places = threading.Barrier(8), [], []

    def step() -> None:
        barrier.wait()
        try:
            places.append(store.try_enter("run-t", None, start_width=8))
        except Exception as error:
            errors.append(error)

    threads = [threading.Thread(target=step) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == [] and len(places) == 8 and all(places)
    store.dispose()


def test_progress_reads_the_pace_and_the_run_s_width_without_changing_them(store_url) -> None:
    store = PacingStore(store_url, Clock())
    assert store.snapshot("run-3") == (None, None)  # nothing paced yet: progress says nothing
    store.set_limit(42)
    attempt, _ = store.try_start("run-3", None)
    store.finish(attempt, "run-3", Outcome.USABLE, None)
    pace, width = store.snapshot("run-3")
    assert pacing.pace_line(pace, width) == f"pace 42/min, width {pacing.START_WIDTH + 1}"
    assert store.snapshot("run-other") == (pace, None)  # another run's width is its own
    assert store.report(None).pace == pace  # reading took nothing and moved nothing
    store.dispose()
