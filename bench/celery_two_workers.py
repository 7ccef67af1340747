"""One month on two Celery workers (issue 9's celery target): makespan against the ideal.

    .venv/bin/python bench/celery_two_workers.py [--users 200] [--latency 10] [--pool 50]

Everything on 127.0.0.1, as the celery tests wire it: a fresh RabbitMQ vhost (rabbitmqctl), a
fresh PostgreSQL app database and Dagster instance (deploy/dagster.yaml), moto's S3 server for
covers and step records, the fake Gemini in its own process, two workers started with
``deploy/celery_worker.sh`` (``-P threads -c 50`` each), and ``dagster job execute`` with
``PASSPORT_EXECUTOR=celery``. Prints makespan / ⌈N/K⌉·L and the in-flight figures that the
fake server recorded. The issue's target is N=1000, K=50, L=30 s: at most 1.10 x ideal.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench import workload  # noqa: E402
from bench.run_bench import FakeGeminiProcess, in_flight_figures, stop_process  # noqa: E402
from passport_pipeline_tests.support.deployment import BIN, Deployment  # noqa: E402
from passport_pipeline_tests.support.moto_s3 import MotoS3Server  # noqa: E402
from passport_pipeline_tests.support.postgres import fresh_postgres_database  # noqa: E402
from passport_pipeline_tests.support.rabbitmq import fresh_vhost  # noqa: E402

API_KEY = "AIzaBENCH-celery-0000111122223333"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--latency", type=float, default=10.0)
    parser.add_argument("--pool", type=int, default=50)
    args = parser.parse_args(argv)
    ideal = math.ceil(args.users / args.pool) * args.latency

    root = Path(tempfile.mkdtemp(prefix="celery-bench-"))
    gemini = FakeGeminiProcess(args.latency, API_KEY, root / "gemini.log")
    workers: list[subprocess.Popen] = []
    try:
        with (
            fresh_postgres_database("passport_bench") as (app_db, _),
            fresh_postgres_database("passport_bench_dagster") as (dagster_db, _),
            fresh_vhost("passport-bench") as broker,
            MotoS3Server() as s3,
        ):
            pg = "postgresql+psycopg2://postgres@127.0.0.1:5432/"
            workload.write_app_database(pg + app_db, args.users, 1)
            deployment = Deployment.with_gemini(
                root / "deployment",
                pg + app_db,
                gemini.base_url,
                API_KEY,
                instance_url=pg + dagster_db,
                PASSPORT_EXECUTOR="celery",
                PASSPORT_CELERY_BROKER=broker,
                **s3.environment(s3.create_bucket("passport-bench")),
            )
            deployment.env["PATH"] = f"{BIN}{os.pathsep}{deployment.env.get('PATH', '')}"
            deployment.set_pool_limit(args.pool)
            for name in ("a", "b"):
                log = (root / f"worker-{name}.log").open("w")
                workers.append(
                    subprocess.Popen(
                        [str(REPO / "deploy/celery_worker.sh"), "-n", f"{name}@%h"],
                        cwd=REPO,
                        env=deployment.env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
            for name in ("a", "b"):
                while " ready." not in (root / f"worker-{name}.log").read_text():
                    time.sleep(0.5)
            gemini.reset()
            started = time.monotonic()
            month = str(workload.months(1)[0])
            completed = deployment.run(
                *deployment.month_command(month), timeout=max(900, 8 * ideal + 600)
            )
            makespan = time.monotonic() - started
            stats = gemini.stats()
    finally:
        for worker in workers:
            stop_process(worker)
        gemini.stop()
    figures = in_flight_figures([tuple(i) for i in stats["intervals"]], args.pool)
    print(f"N={args.users} K={args.pool} L={args.latency:g} s, two workers -P threads -c 50")
    print(f"run exit code {completed.returncode}; logs in {root}")
    print(f"makespan {makespan:.1f} s, ideal {ideal:.0f} s: {makespan / ideal:.2f} x ideal")
    mean = figures["mean_window"]
    print(
        f"generate requests {stats['generate_requests']}, max in flight {figures['max']}, "
        f"mean in flight {mean:.1f}"
        if mean is not None
        else "mean in flight: n/a"
    )
    return completed.returncode


if __name__ == "__main__":
    raise SystemExit(main())
