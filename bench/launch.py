"""Launching the months the way an operator does, each command under ``bench/reaper.py``.

``execute``: one ``dagster job execute`` per month, all started together. ``queue``:
``dagster-daemon run`` first, then one ``dagster job launch`` per month.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from collections import Counter
from contextlib import suppress
from pathlib import Path

from bench.measure import InstanceRecords
from bench.setup import log, stop_process
from passport_pipeline_tests.support.deployment import BIN, REPO, Deployment

JOB = "monthly_passport_covers"
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}
OUT_DIR = REPO / "bench" / "out"


class Launched:
    """One operator command under bench/reaper.py (whole-tree CPU via RUSAGE_CHILDREN)."""

    def __init__(self, name: str, args: list[str], deployment: Deployment):
        self.name = name
        self.usage_path = deployment.root / f"{name}.rusage.json"
        self.log_path = deployment.root / f"{name}.log"
        self.log_file = self.log_path.open("w")
        self.started = time.time()
        self.proc = subprocess.Popen(
            [sys.executable, str(REPO / "bench" / "reaper.py"), str(self.usage_path), "--", *args],
            cwd=REPO,
            env=deployment.env,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.ended: float | None = None

    def poll(self) -> bool:
        if self.ended is None and self.proc.poll() is not None:
            self.ended = time.time()
        return self.ended is not None

    def usage(self) -> dict:
        self.log_file.close()
        try:
            return json.loads(self.usage_path.read_text())
        except (OSError, ValueError):
            return {"rc": self.proc.returncode, "utime": math.nan, "stime": math.nan}

    def tail(self, lines: int = 15) -> str:
        with suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


def start_daemon(deployment: Deployment) -> Launched:
    workspace = str(REPO / "workspace.yaml")
    return Launched("daemon", [str(BIN / "dagster-daemon"), "run", "-w", workspace], deployment)


def launch_month(deployment: Deployment, how: str, month_key: str) -> Launched:
    verb = "execute" if how == "execute" else "launch"
    # `launch` names the workspace's code location, the one the daemon loads too.
    target = ["-m", "passport_pipeline.definitions"]
    if verb == "launch":
        target = ["-w", str(REPO / "workspace.yaml")]
    tags = json.dumps({"dagster/partition": month_key})
    args = [str(BIN / "dagster"), "job", verb, *target, "-j", JOB, "--tags", tags]
    return Launched(f"{verb}-{month_key}", args, deployment)


def start_profiler(py_spy: str, one: Launched, tag: str) -> subprocess.Popen:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    out = OUT_DIR / f"{tag}-{one.name}-profile.txt"
    return subprocess.Popen(
        [
            py_spy,
            "record",
            "--pid",
            str(one.proc.pid),
            "--subprocesses",
            "--rate",
            "20",
            "--nonblocking",
            "--format",
            "raw",
            "--output",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=Path(OUT_DIR / f"{tag}-{one.name}-profile.log").open("w"),
        start_new_session=True,
    )


def wait_for_daemon(records: InstanceRecords, daemon: Launched, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if daemon.poll():
            raise RuntimeError(f"dagster-daemon exited:\n{daemon.tail()}")
        with suppress(Exception):
            if records.daemon_running("QUEUED_RUN_COORDINATOR"):
                return
        time.sleep(1.0)
    raise RuntimeError(f"dagster-daemon sent no heartbeat within {timeout:.0f} s")


def wait_for_runs(
    how: str, launched: list[Launched], records: InstanceRecords, months: int, t0, timeout
) -> tuple[float, list[dict], bool]:
    """Until every month's run is finished: (finished wall time, run records, timed out)."""
    deadline = t0 + timeout
    last_note = time.time()
    while time.time() < deadline:
        time.sleep(0.5)
        if how == "execute":
            if all(one.poll() for one in launched):
                return max(one.ended for one in launched), records.runs(), False
        else:
            with suppress(Exception):
                runs = records.runs()
                if len(runs) >= months and all(r["status"] in TERMINAL for r in runs):
                    return time.time(), runs, False
            launches_done = all(one.poll() for one in launched)
            if (
                launches_done
                and any(one.proc.returncode for one in launched)
                and not records.runs()
            ):
                raise RuntimeError("dagster job launch failed:\n" + launched[0].tail())
        if time.time() - last_note > 60:
            last_note = time.time()
            with suppress(Exception):
                statuses = Counter(r["status"] for r in records.runs())
                log(f"{time.time() - t0:.0f} s: runs {dict(statuses)}")
    for one in launched:
        stop_process(one.proc, timeout=30)
    return time.time(), records.runs(), True


def run_baseline(deployment: Deployment, base_url: str, args, timeout: float) -> dict:
    """bench/baseline.py in a fresh process: the same prompts through ThreadPoolExecutor(K)."""
    out = deployment.root / "baseline.json"
    completed = deployment.run(
        sys.executable,
        str(REPO / "bench" / "baseline.py"),
        "--base-url",
        base_url,
        "--users",
        str(args.users),
        "--months",
        str(args.months),
        "--pool",
        str(args.pool),
        str(out),
        timeout=timeout,
    )
    if not out.exists():
        raise RuntimeError(f"baseline failed: {completed.stderr[-2000:]}")
    return json.loads(out.read_text())
