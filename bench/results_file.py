"""A big month's Batch API results file through the results run: time and memory (issue 17).

    .venv/bin/python -m bench.results_file --users 1000

The fake Gemini runs in its own process (its memory and CPU count on neither side) with one
SUCCEEDED batch of N users whose answers are a results file of real-size lines (one 1.7 MB PNG,
2.3 MB of base64, per line), sent as Google sends it: gzip, chunked. This process records the
batch in a fresh deployment's ledger (sqlite instance), as the submitting run would have, and
launches the month's results run as the sensor would, with `dagster job execute` (threads, the
local store, a sqlite app database): ``month_users`` reads the file and fans out one step per
user; each step decodes, checks and stores its cover.

Printed, all measured in this one run:
- the file's size (decoded and on the wire);
- the results reader alone (``GeminiBatchImageModel.answers``): seconds, and seconds per line;
- ``requests``' ``iter_lines()`` (the reader before issue 17) on the first ``--old-lines``
  lines only (it is quadratic in the line's length: the whole file would take most of an
  hour), and its per-line cost beside the new reader's;
- the results run: ``month_users`` from STEP_START to STEP_SUCCESS (target ≤ 60 s for 1,000
  users), the whole run, covers stored, and the run process's peak RSS (target < 500 MB).
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import tempfile
import time
from pathlib import Path

import requests
from dagster import DagsterEventType, DagsterInstance

from passport_pipeline.covers.batch import results_run_config
from passport_pipeline.covers.batch_ledger import BatchRecord, record_batch
from passport_pipeline.domain.batch_protocol import user_key
from passport_pipeline.domain.gemini_protocol import build_generate_body
from passport_pipeline.resources.gemini_batch import GeminiBatchImageModel
from passport_pipeline_tests.support.dataset import UserRow, cover_urls, october, write_dataset
from passport_pipeline_tests.support.deployment import Deployment

MONTH = "2026-10"
KEY = "bench-key"


def serve(users: int, ready: multiprocessing.Queue, stop: multiprocessing.Event) -> None:
    """The fake Gemini with one finished batch of ``users`` answers in a results file."""
    from passport_pipeline_tests.support.fake_gemini import DEFAULT_MODEL, FakeGemini
    from passport_pipeline_tests.support.fake_gemini_batch import FakeBatch

    with FakeGemini(api_keys=[KEY]) as fake:
        requests_ = [
            (user_key(u), build_generate_body(f"A passport cover for user {u}", "3:4"))
            for u in range(1, users + 1)
        ]
        name = "batches/bench0001"
        fake.batches.batches[name] = FakeBatch(name, DEFAULT_MODEL, "bench", requests_, True)
        fake.batches.finish(name)
        ready.put((fake.base_url, name, fake.batches.batches[name].results_file))
        stop.wait(3600)


def old_reader(base_url: str, results_file: str, lines: int) -> tuple[float, int]:
    """requests' iter_lines() (512-byte chunks) on the first ``lines`` lines: CPU-s, bytes."""
    started = time.process_time()
    read = 0
    with requests.get(
        f"{base_url}/download/v1beta/{results_file}:download",
        params={"alt": "media"},
        headers={"x-goog-api-key": KEY},
        stream=True,
        timeout=600,
    ) as response:
        for count, line in enumerate(response.iter_lines(), start=1):
            read += len(line)
            if count >= lines:
                break
    return time.process_time() - started, read


def step_seconds(instance: DagsterInstance, run_id: str, step_key: str) -> float:
    times = {
        entry.dagster_event.event_type: entry.timestamp
        for entry in instance.all_logs(
            run_id, of_type={DagsterEventType.STEP_START, DagsterEventType.STEP_SUCCESS}
        )
        if entry.step_key == step_key
    }
    return times[DagsterEventType.STEP_SUCCESS] - times[DagsterEventType.STEP_START]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--old-lines", type=int, default=10, help="lines for the old reader")
    args = parser.parse_args()

    context = multiprocessing.get_context("spawn")
    ready, stop = context.Queue(), context.Event()
    server = context.Process(target=serve, args=(args.users, ready, stop), daemon=True)
    server.start()
    try:
        base_url, name, results_file = ready.get(timeout=600)
        model = GeminiBatchImageModel(api_key=KEY, base_url=base_url)
        keys = [user_key(u) for u in range(1, args.users + 1)]
        job = model.get(name)

        started = time.monotonic()
        decoded = sum(len(str(a.response)) for a in model.answers(job, keys))
        new_s = time.monotonic() - started
        wire = requests.get(
            f"{base_url}/download/v1beta/{results_file}:download",
            params={"alt": "media"},
            headers={"x-goog-api-key": KEY, "Accept-Encoding": "gzip"},
            stream=True,
            timeout=600,
        )
        with wire:
            on_wire = sum(len(chunk) for chunk in wire.raw.stream(1 << 20, decode_content=False))
        old_cpu, old_bytes = old_reader(base_url, results_file, args.old_lines)

        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            db_url = f"sqlite:///{root / 'app.sqlite3'}"
            user_ids = keys_ids(keys)
            users = [UserRow(u, visits=[(1 + u % 5, october(1 + u % 28))]) for u in user_ids]
            write_dataset(db_url, users)
            deployment = Deployment.create(
                root,
                PASSPORT_DATABASE_URL=db_url,
                PASSPORT_IMAGE_MODEL="gemini-batch",
                GEMINI_BASE_URL=base_url,
                GEMINI_API_KEY=KEY,
            )
            record = BatchRecord(name, MONTH, "SUCCEEDED", user_ids, keys, "bench-submit")
            with deployment.instance() as instance:
                record_batch(instance, record, job, first=True)
            run_started = time.monotonic()
            completed = deployment.run(
                *deployment.month_command(MONTH, results_run_config(record)), timeout=3600
            )
            run_s = time.monotonic() - run_started
            with deployment.instance() as instance:
                [run] = instance.get_runs(limit=1)
                month_users_s = step_seconds(instance, run.run_id, "passport_covers.month_users")
            succeeded = completed.returncode == 0
            covered = sum(1 for url in cover_urls(db_url).values() if url)
        # The largest of the children's peaks: the run process (the launcher's own is small).
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    finally:
        stop.set()
        server.join(timeout=30)

    lines = args.users
    sizes = f"{decoded / 1e6:,.0f} MB decoded, {on_wire / 1e6:,.0f} MB gzip"
    print(f"results file: {lines} lines, {sizes}")
    print(f"new reader (answers()): {new_s:.1f} s, {new_s / lines * 1000:.1f} ms per line")
    old_per_line = old_cpu / args.old_lines
    print(
        f"old reader (iter_lines, first {args.old_lines} lines, {old_bytes / 1e6:.0f} MB): "
        f"{old_cpu:.1f} CPU-s, {old_per_line:.2f} CPU-s per line -> about "
        f"{old_per_line * lines / 60:.0f} CPU-min for {lines} lines"
    )
    print(f"old / new per line: {old_per_line / (new_s / lines):.0f}x")
    print(
        f"results run: {'succeeded' if succeeded else 'FAILED'}, {covered} covers stored, "
        f"{run_s:.1f} s in all; month_users {month_users_s:.1f} s (target <= 60 s: "
        f"{'met' if month_users_s <= 60 else 'MISSED'})"
    )
    print(f"peak RSS of the run process: {peak_mb:.0f} MB (target < 500 MB: "
          f"{'met' if peak_mb < 500 else 'MISSED'})")  # fmt: skip


def keys_ids(keys: list[str]) -> list[int]:
    return [int(key.removeprefix("user_")) for key in keys]


if __name__ == "__main__":
    main()
