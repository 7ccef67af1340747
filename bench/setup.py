"""The benchmark's world: a fake Gemini in its own process, a fresh app database, a deployment.

The deployment is the tests' builder (``passport_pipeline_tests/support/deployment.py``): the
checkout's dagster.yaml (``--storage sqlite``) or the production deploy/dagster.yaml on a fresh
PostgreSQL database (``--storage postgres``), plus any ``--extra-instance-yaml``.
"""

from __future__ import annotations

import os
import secrets
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import requests

from bench import workload
from passport_pipeline_tests.support.deployment import BIN, REPO, Deployment
from passport_pipeline_tests.support.postgres import database_url, fresh_postgres_database


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def stop_process(proc: subprocess.Popen, timeout: float = 30, sig=signal.SIGTERM) -> None:
    """Signal one process we started, wait, then kill its process group (our own session)."""
    if proc.poll() is None:
        with suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)  # started with start_new_session=True
            proc.wait(timeout=10)


class FakeGeminiProcess:
    """``python -m passport_pipeline_tests.support.fake_gemini`` in its own process, so that
    its CPU counts on neither side; its record is read over HTTP (``/_stats``)."""

    def __init__(self, latency: float, api_key: str, log_path: Path):
        self.log_file = log_path.open("w")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "passport_pipeline_tests.support.fake_gemini",
                "--port",
                "0",
                "--latency",
                str(latency),
                "--api-key",
                api_key,
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=self.log_file,
            text=True,
            start_new_session=True,
        )
        ready, _, _ = select.select([self.proc.stdout], [], [], 60)
        if not ready:
            self.stop()
            raise RuntimeError("the fake Gemini did not print its URL within 60 s")
        self.base_url = self.proc.stdout.readline().strip()
        if not self.base_url.startswith("http://127.0.0.1:"):
            self.stop()
            raise RuntimeError(f"the fake Gemini printed {self.base_url!r}")

    def stats(self) -> dict:
        answer = requests.get(self.base_url + "/_stats", timeout=60)
        answer.raise_for_status()
        return answer.json()

    def reset(self) -> None:
        requests.post(self.base_url + "/_reset", timeout=30).raise_for_status()

    def stop(self) -> None:
        stop_process(self.proc, timeout=10)
        self.log_file.close()


@dataclass
class World:
    fake: FakeGeminiProcess
    deployment: Deployment
    admin: object  # a psycopg2 connection to the server, for its postmaster's pid


@contextmanager
def world(args, root: Path, tag: str, result: dict, databases: list[str]) -> Iterator[World]:
    """Everything the launches need; stopped and dropped on the way out (unless ``--keep``).
    Fills ``result["app_database"]`` and ``result["pool_setting"]``; adds the names of the
    databases it creates to ``databases`` (what ``--keep`` leaves behind)."""
    api_key = "bench-" + secrets.token_hex(12)
    with ExitStack() as stack:
        fake = FakeGeminiProcess(args.latency, api_key, root / "fake_gemini.log")
        stack.callback(fake.stop)
        log(f"fake Gemini at {fake.base_url} (latency {args.latency} s)")

        app_db, admin = stack.enter_context(
            fresh_postgres_database(f"passport_bench_{tag}", args.keep)
        )
        databases.append(app_db)
        seeded_at = time.monotonic()
        counts = workload.write_app_database(database_url(app_db), args.users, args.months)
        result["app_database"] = {**counts, "seconds": round(time.monotonic() - seeded_at, 2)}
        log(f"app database {app_db}: {counts} in {result['app_database']['seconds']} s")

        instance_url = None
        if args.storage == "postgres":
            name, _ = stack.enter_context(
                fresh_postgres_database(f"passport_bench_{tag}_dagster", args.keep)
            )
            databases.append(name)
            instance_url = database_url(name)
        deployment = Deployment.with_gemini(
            root,
            database_url(app_db),
            fake.base_url,
            api_key,
            instance_url,
            extra_instance_yaml=(
                args.extra_instance_yaml.read_text() if args.extra_instance_yaml else None
            ),
            PASSPORT_KEY_SECRET="bench-secret-" + secrets.token_hex(16),
            PASSPORT_MAX_CONCURRENT_STEPS=str(args.max_concurrent_steps or args.pool),
            **({"PASSPORT_EXECUTOR": args.executor} if getattr(args, "executor", None) else {}),
            NO_PROXY="127.0.0.1,localhost",
            PATH=f"{BIN}:{os.environ.get('PATH', '')}",
        )
        # The operator's path to the global limit (also creates the instance's tables).
        dagster = str(BIN / "dagster")
        run_cli(deployment, dagster, "instance", "concurrency", "set", "gemini", str(args.pool))
        got = run_cli(deployment, dagster, "instance", "concurrency", "get", "gemini").strip()
        result["pool_setting"] = got.splitlines()[-1] if got else ""
        log(f"pool: {result['pool_setting']}")
        yield World(fake, deployment, admin)


def run_cli(deployment: Deployment, *args: str) -> str:
    completed = deployment.run(*args, timeout=180)
    if completed.returncode != 0:
        raise RuntimeError(f"{' '.join(args[1:])} failed: {completed.stderr[-2000:]}")
    return completed.stdout
