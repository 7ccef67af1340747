"""What one Prometheus scrape of the exporter costs, during and after a month (issue 21).

    .venv/bin/python -m bench.metrics_scrape                       # 1,000 users, 2 months
    .venv/bin/python -m bench.metrics_scrape --users 200 --months 1 --latency 0.2

A fresh deployment (sqlite instance and app database, local store, or ``--instance-url`` for
an empty PostgreSQL database and the production ``deploy/dagster.yaml``), the fake Gemini in
its own process answering after ``--latency`` seconds, and the exporter
(``python -m passport_pipeline.cli.metrics``) as an operator starts it. Each month is a
``dagster job execute`` of N users; the bench scrapes ``/metrics`` every ``--interval`` seconds
while it runs and 20 times after it, then restarts the exporter (which reads the whole
history once) and scrapes 20 times more. Printed: ms per scrape (median, p95, max) in each
phase, with the exporter's own CPU per scrape (the wall time includes waiting for a CPU on a
busy machine), and whether the scrape time after each month grows with the months behind it.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import requests
from prometheus_client.parser import text_string_to_metric_families

from passport_pipeline_tests.support.dataset import UserRow, october, write_dataset
from passport_pipeline_tests.support.deployment import BIN, Deployment
from passport_pipeline_tests.support.prometheus import exporter

API_KEY = "bench-metrics-key-0123456789"
MONTHS = ["2026-10", "2026-09", "2026-08", "2026-07", "2026-06"]
AFTER_SCRAPES = 20


def scrape(url: str, month: str) -> tuple[float, float]:
    """(ms the scrape took, the month's covered users it served)."""
    started = time.perf_counter()
    text = requests.get(url, timeout=60).text
    took = (time.perf_counter() - started) * 1000
    covered = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "passport_month_users" and sample.labels == {
                "month": month,
                "state": "covered",
            }:
                covered = sample.value
    return took, covered


def cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def figures(times: list[float]) -> str:
    if not times:
        return "no scrape"
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return (
        f"{len(times):>5} scrapes  median {statistics.median(times):7.1f} ms  "
        f"p95 {p95:7.1f} ms  max {max(times):7.1f} ms"
    )


def fake(root: Path, latency: float) -> tuple[subprocess.Popen, str]:
    log = (root / "fake.log").open("w")
    command = [sys.executable, "-m", "passport_pipeline_tests.support.fake_gemini"]
    proc = subprocess.Popen(
        [*command, "--port", "0", "--api-key", API_KEY, "--latency", str(latency)],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    return proc, proc.stdout.readline().strip()


def users(count: int) -> list[UserRow]:
    return [UserRow(u, visits=[(1 + u % 5, october(1 + u % 28))]) for u in range(1, count + 1)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--months", type=int, default=2, choices=range(1, len(MONTHS) + 1))
    parser.add_argument("--latency", type=float, default=0.5, help="the fake's seconds a call")
    parser.add_argument("--pool", type=int, default=50)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between scrapes")
    parser.add_argument("--instance-url", help="an empty PostgreSQL database for the instance")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, instance)")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="metrics-bench-"))
    db_url = f"sqlite:///{root / 'app.sqlite3'}"
    # The dataset's visits are October's: every month of the bench asks for October's users.
    write_dataset(db_url, users(args.users))
    proc, base_url = fake(root, args.latency)
    deployment = Deployment.with_gemini(
        root / "deployment",
        db_url,
        base_url,
        API_KEY,
        instance_url=args.instance_url,
        PASSPORT_MAX_CONCURRENT_STEPS=str(args.pool),
    )
    deployment.run(str(BIN / "dagster"), "instance", "concurrency", "set", "gemini", str(args.pool))
    storage = "postgres" if args.instance_url else "sqlite"
    print(
        f"{args.users} users, {args.months} runs of the month, fake latency {args.latency} s, "
        f"pool {args.pool}, instance {storage}; {root}"
    )
    after_each: list[float] = []
    try:
        with exporter(deployment.env, root / "exporter.log") as metrics:
            url, cpu = metrics.url, psutil.Process(metrics.pid)
            for month in ["2026-10"] * args.months:
                during: list[float] = []
                run = deployment.start(*deployment.month_command(month))
                used = cpu_s(cpu)
                while run.poll() is None:
                    took = scrape(url, month)[0]
                    during.append(took)
                    time.sleep(max(0.0, args.interval - took / 1000))
                during_cpu = (cpu_s(cpu) - used) * 1000 / max(1, len(during))
                assert run.returncode == 0, run.communicate()[0][-3000:]
                used = cpu_s(cpu)
                after = [scrape(url, month)[0] for _ in range(AFTER_SCRAPES)]
                after_cpu = (cpu_s(cpu) - used) * 1000 / AFTER_SCRAPES
                served = scrape(url, month)[1]
                after_each.append(statistics.median(after))
                # A second run of the month reuses its covers: history grows, nothing is paid.
                print(f"run {len(after_each)} of the month ({served:.0f} covered)")
                print(f"  during the run  {figures(during)}  exporter CPU {during_cpu:.1f} ms")
                print(f"  after the run   {figures(after)}  exporter CPU {after_cpu:.1f} ms")
        started = time.perf_counter()
        with exporter(deployment.env, root / "exporter-restarted.log") as metrics:
            first = (time.perf_counter() - started) * 1000
            again = [scrape(metrics.url, "2026-10")[0] for _ in range(AFTER_SCRAPES)]
        print(f"restarted: start and first full read {first:.0f} ms (the whole history, once)")
        print(f"  after restart   {figures(again)}")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    growth = after_each[-1] / after_each[0] if len(after_each) > 1 else 1.0
    print(
        "median scrape after each month: "
        + ", ".join(f"{ms:.1f} ms" for ms in after_each)
        + f" (last / first = {growth:.2f}; target <= 200 ms and no growth with history)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
