"""The month against Gemini's quotas, paced and as before (issue 20). Ratios, measured in one run.

    .venv/bin/python -m bench.quota_pacing                 # both parts (about 15 minutes)
    .venv/bin/python -m bench.quota_pacing --part quota --users 300
    .venv/bin/python -m bench.quota_pacing --part garbage

Part ``quota``: an N-user month (default 300) against a fake Gemini whose hidden quota is 60
requests a minute (Google's 429 bodies, per-minute window), answering in 1 s, pool 50; once
with the pace (``GEMINI_PACING=true``, the default, no limit configured: it learns the quota
from the first 429) and once with the pacing of before (``GEMINI_PACING=false``). Printed: the
429s as a share of all requests the fake saw, and the makespan against the quota's floor
(N / 60 minutes).

Part ``garbage``: a 100-user month against a model that answers only unusable images, at pool
widths 4, 50 and 500 (``PASSPORT_MAX_CONCURRENT_STEPS`` and the pool), paced and not: the paid
calls the fake served before the run's breaker halted it.

Each launch is `dagster job execute` on a fresh deployment (sqlite instance and app database,
local store); the fake runs in its own process; every figure is read at the fake.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from passport_pipeline_tests.support.dataset import UserRow, cover_urls, october, write_dataset
from passport_pipeline_tests.support.deployment import BIN, Deployment

API_KEY = "bench-quota-key-0123456789"
MONTH = "2026-10"


def fake(root: Path, *args: str) -> tuple[subprocess.Popen, str]:
    log = (root / "fake.log").open("w")
    command = [sys.executable, "-m", "passport_pipeline_tests.support.fake_gemini"]
    proc = subprocess.Popen(
        [*command, "--port", "0", "--api-key", API_KEY, *args],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    return proc, proc.stdout.readline().strip()


def month(root: Path, users: int, fake_args: list[str], pool: int, **env: str) -> dict:
    """One month on a fresh deployment: makespan, the fake's record, covers stored."""
    root.mkdir(parents=True)
    db_url = f"sqlite:///{root / 'app.sqlite3'}"
    write_dataset(
        db_url, [UserRow(u, visits=[(1 + u % 5, october(1 + u % 28))]) for u in range(1, users + 1)]
    )
    proc, base_url = fake(root, *fake_args)
    try:
        deployment = Deployment.with_gemini(
            root,
            db_url,
            base_url,
            API_KEY,
            PASSPORT_MAX_CONCURRENT_STEPS=str(pool),
            PASSPORT_STEP_RETRY_DELAY_S="2",
            GEMINI_START_RATE="60",  # the production default (the tests start faster)
            **env,
        )
        deployment.run(str(BIN / "dagster"), "instance", "concurrency", "set", "gemini", str(pool))
        started = time.monotonic()
        completed = deployment.run(*deployment.month_command(MONTH), timeout=3600)
        makespan = time.monotonic() - started
        stats = requests.get(f"{base_url}/_stats", timeout=30).json()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    covered = sum(1 for url in cover_urls(db_url).values() if url)
    return {"makespan": makespan, "stats": stats, "covered": covered, "rc": completed.returncode}


def quota_part(root: Path, users: int) -> None:
    floor = users / 60 * 60  # seconds: N requests at 60 a minute
    print(f"quota: {users} users, hidden quota 60/min, latency 1 s, pool 50; floor {floor:.0f} s")
    print(f"{'pacing':<8}{'requests':>10}{'429s':>7}{'429 share':>11}{'covers':>8}"
          f"{'makespan s':>12}{'/ floor':>9}")  # fmt: skip
    for pacing in ("true", "false"):
        fake_args = ["--latency", "1", "--quota-per-minute", "60"]
        result = month(root / f"quota-{pacing}", users, fake_args, 50, GEMINI_PACING=pacing)
        stats = result["stats"]
        requests_seen = stats["generate_requests"]
        rejected = sum(stats["rejected_by_quota"].values())
        print(
            f"{'on' if pacing == 'true' else 'before':<8}{requests_seen:>10}{rejected:>7}"
            f"{rejected / requests_seen:>11.1%}{result['covered']:>8}"
            f"{result['makespan']:>12.0f}{result['makespan'] / floor:>9.2f}"
        )
    print("targets (paced): 429s <= 5 % of requests; makespan <= 1.15 x floor")


def garbage_part(root: Path) -> None:
    print("garbage: 100 users, every answer unusable; paid calls until the breaker halted the run")
    print(f"{'width':>6}{'paced':>8}{'before':>8}")
    for width in (4, 50, 500):
        paid = {}
        for pacing in ("true", "false"):
            result = month(
                root / f"garbage-{width}-{pacing}", 100, ["--garbage"], width, GEMINI_PACING=pacing
            )
            paid[pacing] = result["stats"]["generate_requests"]
        print(f"{width:>6}{paid['true']:>8}{paid['false']:>8}")
    print("target (paced, width 50): <= 30 paid calls")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["quota", "garbage", "both"], default="both")
    parser.add_argument("--users", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.part in ("garbage", "both"):
            garbage_part(Path(tmp))
        if args.part in ("quota", "both"):
            quota_part(Path(tmp), args.users)


if __name__ == "__main__":
    main()
