"""Many processes claiming one pool's slots at the same instant, on a real PostgreSQL server or
the embedded sqlite instance.

Each claimer is a separate process with its own storage object (as each step process of a
deployment has), and all of them are released together by a barrier, so the claims race for
real. Used by ``test_instance_storage.py`` (our PostgreSQL storage), ``test_sqlite_storage.py``
(the checkout's dagster.yaml) and ``bench/pool_claims.py`` (stock dagster-postgres against ours).
"""

from __future__ import annotations

import importlib
import multiprocessing
from dataclasses import dataclass

POOL = "gemini"


@dataclass(frozen=True)
class Storage:
    """An event-log storage class by import path, and the database it points at."""

    module: str
    cls: str
    postgres_url: str

    def build(self):
        return getattr(importlib.import_module(self.module), self.cls)(self.postgres_url)


@dataclass(frozen=True)
class InstanceHomeStorage:
    """The event-log storage of the instance that a DAGSTER_HOME's dagster.yaml describes."""

    home: str

    def build(self):
        from dagster import DagsterInstance

        return DagsterInstance.from_config(self.home).event_log_storage


def claimer_context() -> multiprocessing.context.BaseContext:
    """Processes forked from a server that imported Dagster and our storages once: no inherited
    connections or threads (as with spawn), without twelve processes importing Dagster each."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(
        [
            __name__,
            "dagster",
            "passport_pipeline.execution.instance_storage",
            "passport_pipeline.execution.sqlite_storage",
            "passport_pipeline.resources.pacing",
        ]
    )
    return context


def _claimer(
    storage: Storage | InstanceHomeStorage, index: int, trials: int, start, done, results
) -> None:
    event_log = storage.build()
    for trial in range(trials):
        start.wait()
        status = event_log.claim_concurrency_slot(POOL, f"trial-{trial}", f"step-{index}")
        results.put((trial, status.is_claimed))
        done.wait()
    event_log.dispose()


def claim_race(
    storage: Storage | InstanceHomeStorage, claimers: int, trials: int, limit: int
) -> list[int]:
    """Per trial, how many claimers were told they hold a slot of a pool of ``limit``."""
    event_log = storage.build()
    event_log.set_concurrency_slots(POOL, limit)
    context = claimer_context()
    start = context.Barrier(claimers + 1)
    done = context.Barrier(claimers + 1)
    results = context.Queue()
    processes = [
        context.Process(target=_claimer, args=(storage, i, trials, start, done, results))
        for i in range(claimers)
    ]
    for process in processes:
        process.start()
    claimed = []
    try:
        for trial in range(trials):
            start.wait(timeout=120)
            answers = [results.get(timeout=120) for _ in range(claimers)]
            assert {t for t, _ in answers} == {trial}
            claimed.append(sum(is_claimed for _, is_claimed in answers))
            # The steps end: their slots and queue entries go back before the next race.
            event_log.free_concurrency_slots_for_run(f"trial-{trial}")
            done.wait(timeout=120)
    finally:
        for process in processes:
            process.join(timeout=60)
            if process.is_alive():
                process.kill()
        event_log.dispose()
    return claimed


def _pace_racer(url: str, index: int, limit: float, start, results) -> None:
    from passport_pipeline.resources.pacing import PacingStore

    store = PacingStore(url)
    start.wait()
    call_id, _ = store.try_start(f"run-{index}", limit)  # each its own run: the rate decides
    results.put(call_id is not None)
    store.dispose()


def pace_race(url: str, racers: int, limit: float) -> int:
    """How many of ``racers`` processes, asking the pace store at ``url`` for one start at the
    same instant (each for a run of its own), were let through under ``limit`` a minute."""
    from passport_pipeline.resources.pacing import PacingStore

    store = PacingStore(url)
    store.report(limit)  # the tables exist before the race
    store.dispose()
    context = claimer_context()
    start, results = context.Barrier(racers + 1), context.Queue()
    processes = [
        context.Process(target=_pace_racer, args=(url, index, limit, start, results))
        for index in range(racers)
    ]
    for process in processes:
        process.start()
    try:
        start.wait(timeout=120)
        return sum(results.get(timeout=120) for _ in range(racers))
    finally:
        for process in processes:
            process.join(timeout=60)
            if process.is_alive():
                process.kill()
