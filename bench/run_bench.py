"""Benchmark the real cover job against a local Gemini-speaking server (issue 4).

    .venv/bin/python bench/run_bench.py [--users 1000] [--latency 30] [--pool 50]
        [--storage postgres|sqlite] [--months 1] [--launch execute|queue]
        [--no-baseline] [--keep]

See bench/README.md for what each figure means. Everything runs on 127.0.0.1: a fake Gemini
in its own process, a fresh PostgreSQL app database, a fresh Dagster instance (sqlite or
PostgreSQL storage) with the checkout's dagster.yaml, and the operator's own commands
(`dagster instance concurrency set`, `dagster job execute` / `dagster-daemon run` +
`dagster job launch`). Prints one table and writes it as JSON to bench/out/<timestamp>.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import secrets
import select
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.request
from collections import Counter, defaultdict
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path

import psutil
import psycopg2

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench import workload  # noqa: E402
from passport_pipeline_tests.support.deployment import isolated_environ  # noqa: E402

BIN = Path(sys.executable).parent
OUT_DIR = REPO / "bench" / "out"
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
JOB = "monthly_passport_covers"
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}
SAMPLE_EVERY_S = 1.0  # PSS of ~200 processes costs the bench ~0.1 core at 0.5 s


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- PostgreSQL ---------------------------------------------------------------------------------


def pg_admin(sql: str) -> None:
    conn = psycopg2.connect(dbname="postgres", connect_timeout=10, **PG)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


def pg_query(db: str, sql: str, params: tuple | None = None) -> list[tuple]:
    conn = psycopg2.connect(dbname=db, connect_timeout=10, **PG)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()
    finally:
        conn.close()


def postmaster() -> psutil.Process:
    backend = pg_query("postgres", "SELECT pg_backend_pid()")[0][0]
    return psutil.Process(psutil.Process(backend).ppid())


def tree_cpu(root: psutil.Process) -> float:
    """CPU-s (user+system) of a process and everything it ever started, right now.

    Live processes count their own time and their reaped children's (cutime); a dead
    process's time sits in the cutime of whichever live process reaped it."""
    total = 0.0
    for proc in [root, *_children(root)]:
        with suppress(psutil.Error):
            t = proc.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
    return total


def _children(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return proc.children(recursive=True)
    except psutil.Error:
        return []


# -- the fake Gemini ----------------------------------------------------------------------------


class FakeGeminiProcess:
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
        with urllib.request.urlopen(self.base_url + "/_stats", timeout=60) as answer:
            return json.load(answer)

    def reset(self) -> None:
        request = urllib.request.Request(self.base_url + "/_reset", data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=30) as answer:
            answer.read()

    def stop(self) -> None:
        stop_process(self.proc, timeout=10)
        self.log_file.close()


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


# -- sampling the launched process trees --------------------------------------------------------


class TreeSampler(threading.Thread):
    """Every SAMPLE_EVERY_S: summed PSS/RSS of the launched trees (peak kept), process count."""

    def __init__(self):
        super().__init__(daemon=True)
        self.roots: list[psutil.Process] = []  # the reaper wrappers (not themselves counted)
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.peak_pss = self.peak_rss = self.peak_procs = self.samples = 0
        self.pss_series: list[tuple[float, int, int]] = []

    def add_root(self, pid: int) -> None:
        with suppress(psutil.Error), self.lock:
            self.roots.append(psutil.Process(pid))

    def run(self) -> None:
        while not self.stopping.wait(SAMPLE_EVERY_S):
            self.sample()

    def sample(self) -> None:
        with self.lock:
            roots = list(self.roots)
        pss = rss = count = 0
        for root in roots:
            for proc in _children(root):
                with suppress(psutil.Error):
                    info = proc.memory_full_info()
                    pss, rss, count = pss + info.pss, rss + info.rss, count + 1
        self.samples += 1
        self.peak_pss, self.peak_rss = max(self.peak_pss, pss), max(self.peak_rss, rss)
        self.peak_procs = max(self.peak_procs, count)
        self.pss_series.append((time.time(), pss, count))

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=10)


class Launched:
    """One operator command under bench/reaper.py (whole-tree CPU via RUSAGE_CHILDREN)."""

    def __init__(self, name: str, args: list[str], env: dict, workdir: Path):
        self.name = name
        self.usage_path = workdir / f"{name}.rusage.json"
        self.log_path = workdir / f"{name}.log"
        self.log_file = self.log_path.open("w")
        self.started = time.time()
        self.proc = subprocess.Popen(
            [sys.executable, str(REPO / "bench" / "reaper.py"), str(self.usage_path), "--", *args],
            cwd=REPO,
            env=env,
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


# -- the Dagster instance's own records ----------------------------------------------------------


class InstanceDb:
    """SQL on the instance storage: runs, event-log rows, step events (no Dagster import)."""

    def __init__(self, storage: str, dagster_home: Path, db: str | None):
        self.storage, self.home, self.db = storage, dagster_home, db

    def _sqlite(self, path: Path, sql: str) -> list[tuple]:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()

    def query_runs_db(self, sql: str) -> list[tuple]:
        if self.storage != "sqlite":
            return pg_query(self.db, sql)
        path = self.home / "history" / "runs.db"
        return self._sqlite(path, sql) if path.exists() else []

    def query_events(self, sql: str) -> list[tuple]:
        if self.storage != "sqlite":
            return pg_query(self.db, sql)
        rows: list[tuple] = []
        for path in sorted((self.home / "history" / "runs").glob("*.db")):
            if path.name != "index.db":
                rows += self._sqlite(path, sql)
        return rows

    def runs(self) -> list[dict]:
        rows = self.query_runs_db("SELECT run_id, status, start_time, end_time FROM runs")
        return [
            dict(zip(("run_id", "status", "start_time", "end_time"), r, strict=True)) for r in rows
        ]

    def event_rows(self) -> int:
        return sum(r[0] for r in self.query_events("SELECT count(*) FROM event_logs"))

    def event_types(self) -> Counter:
        counts: Counter = Counter()
        for kind, n in self.query_events(
            "SELECT dagster_event_type, count(*) FROM event_logs GROUP BY dagster_event_type"
        ):
            counts[kind or "(log message)"] += n
        return counts

    def step_events(self) -> list[tuple[str, str, str, float]]:
        sql = (
            "SELECT run_id, step_key, dagster_event_type, timestamp FROM event_logs "
            "WHERE dagster_event_type IN ('STEP_WORKER_STARTING', 'STEP_WORKER_STARTED', "
            "'STEP_START', 'STEP_SUCCESS', 'STEP_FAILURE', 'STEP_UP_FOR_RETRY') "
            "AND step_key LIKE 'passport_covers.generate_cover%'"
        )
        return [(r, s, k, _epoch(ts)) for r, s, k, ts in self.query_events(sql)]


def _epoch(value) -> float:
    """Event-log timestamps are UTC wall time without a zone (a datetime or, in sqlite, text)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC).timestamp()
    return float(value)


# -- in-flight arithmetic ----------------------------------------------------------------------


def in_flight_figures(intervals: list[tuple[float, float]], k: int) -> dict:
    """Max in flight, and the mean between the k-th start and the k-th-from-last end."""
    done = [(s, e) for s, e in intervals if e is not None]
    if not done:
        return {"max": 0, "mean_window": None, "window_s": 0.0}
    points = sorted(
        [(s, 1) for s, _ in done] + [(e, -1) for _, e in done], key=lambda p: (p[0], p[1])
    )
    level = peak = 0
    for _, step in points:
        level += step
        peak = max(peak, level)
    starts = sorted(s for s, _ in done)
    ends = sorted(e for _, e in done)
    if len(done) < k:
        return {"max": peak, "mean_window": None, "window_s": 0.0}
    lo, hi = starts[k - 1], ends[len(ends) - k]
    if hi <= lo:
        return {"max": peak, "mean_window": None, "window_s": 0.0}
    busy = sum(max(0.0, min(e, hi) - max(s, lo)) for s, e in done)
    return {"max": peak, "mean_window": busy / (hi - lo), "window_s": hi - lo}


def step_intervals(events: list[tuple[str, str, str, float]]) -> dict:
    """The pipeline's own view: per step attempt, worker start → start → end."""
    by_step: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for run_id, step, kind, ts in events:
        by_step[(run_id, step)][kind].append(ts)
    intervals, workers, spawn, to_start, body = [], [], [], [], []
    for kinds in by_step.values():
        starts = sorted(kinds.get("STEP_START", []))
        ends = sorted(
            kinds.get("STEP_SUCCESS", [])
            + kinds.get("STEP_FAILURE", [])
            + kinds.get("STEP_UP_FOR_RETRY", [])
        )
        intervals += list(zip(starts, ends, strict=False))
        starting, started = kinds.get("STEP_WORKER_STARTING"), kinds.get("STEP_WORKER_STARTED")
        if starting and started:
            spawn.append(min(started) - min(starting))
        if started and starts:
            to_start.append(min(starts) - min(started))
        if starts and ends:
            body.append(max(ends) - min(starts))
        if starting and ends:
            workers.append((min(starting), max(ends)))
    return {
        "intervals": intervals,
        "workers": workers,
        "spawn": spawn,
        "to_start": to_start,
        "body": body,
    }


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _p95(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


# -- the benchmark ----------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1000, help="N users per month")
    parser.add_argument("--latency", type=float, default=30.0, help="L s per generation")
    parser.add_argument("--pool", type=int, default=50, help="K: the gemini pool limit")
    parser.add_argument(
        "--storage",
        choices=["postgres", "sqlite"],
        default="postgres",
        help="postgres: dagster-postgres's `storage: postgres:` on a fresh database",
    )
    parser.add_argument("--months", type=int, default=1, help="M months launched together")
    parser.add_argument("--launch", choices=["execute", "queue"], default="execute")
    parser.add_argument(
        "--max-concurrent-steps",
        type=int,
        default=None,
        help="PASSPORT_MAX_CONCURRENT_STEPS (default: K)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="give up on the pipeline after this many s (default from ideal)",
    )
    parser.add_argument(
        "--extra-instance-yaml",
        type=Path,
        default=None,
        help="append this YAML to the instance's dagster.yaml (experiments)",
    )
    parser.add_argument(
        "--py-spy",
        metavar="PY_SPY_BIN",
        default=None,
        help="profile every launched process with `py-spy record --subprocesses` (20 Hz, "
        "non-blocking; collapsed stacks to bench/out/<id>-profile.txt). Perturbs the figures",
    )
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep temp dirs and databases")
    args = parser.parse_args(argv)
    if min(args.users, args.pool, args.months) < 1 or args.latency < 0:
        parser.error("--users, --pool and --months must be ≥ 1, --latency ≥ 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    n, k, lat, m = args.users, args.pool, args.latency, args.months
    steps = n * m
    ideal = math.ceil(steps / k) * lat
    timeout = args.timeout or max(900.0, 8 * ideal + 600)
    tag = secrets.token_hex(4)
    app_db, inst_db = f"passport_bench_{tag}", f"passport_bench_{tag}_dagster"
    root = Path(tempfile.mkdtemp(prefix=f"passport_bench_{tag}_"))
    api_key = "bench-" + secrets.token_hex(12)
    result: dict = {
        "options": {
            "users": n,
            "latency_s": lat,
            "pool": k,
            "storage": args.storage,
            "months": m,
            "launch": args.launch,
            "baseline": not args.no_baseline,
            "max_concurrent_steps": args.max_concurrent_steps or k,
            "profiled_with_py_spy": bool(args.py_spy),
            "extra_instance_yaml": (
                args.extra_instance_yaml.read_text() if args.extra_instance_yaml else None
            ),
        },
        "code": code_fingerprint(),
        "machine": machine_facts(),
        "started_at": datetime.now().astimezone().isoformat(timespec="seconds"),
        "workdir": str(root),
    }
    created_dbs: list[str] = []
    fake: FakeGeminiProcess | None = None
    daemon: Launched | None = None
    launched: list[Launched] = []
    try:
        log(f"workdir {root}")
        fake = FakeGeminiProcess(lat, api_key, root / "fake_gemini.log")
        log(f"fake Gemini at {fake.base_url} (latency {lat} s)")

        pg_admin(f'CREATE DATABASE "{app_db}"')
        created_dbs.append(app_db)
        app_url = f"postgresql+psycopg2://postgres@127.0.0.1:5432/{app_db}"
        seeded_at = time.monotonic()
        counts = workload.write_app_database(app_url, n, m)
        result["app_database"] = {**counts, "seconds": round(time.monotonic() - seeded_at, 2)}
        log(f"app database {app_db}: {counts} in {result['app_database']['seconds']} s")

        dagster_home = root / "dagster"
        dagster_home.mkdir()
        yaml = (REPO / "dagster.yaml").read_text()
        if args.storage != "sqlite":
            pg_admin(f'CREATE DATABASE "{inst_db}"')
            created_dbs.append(inst_db)
            yaml += "\n" + instance_storage_yaml(inst_db)
        if args.extra_instance_yaml:
            yaml += "\n" + args.extra_instance_yaml.read_text()
        (dagster_home / "dagster.yaml").write_text(yaml)
        instance = InstanceDb(args.storage, dagster_home, inst_db)

        env = isolated_environ()
        env.update(
            DAGSTER_HOME=str(dagster_home),
            PASSPORT_HOME=str(root / "home"),
            PASSPORT_DATABASE_URL=app_url,
            PASSPORT_IMAGE_MODEL="gemini",
            GEMINI_BASE_URL=fake.base_url,
            GEMINI_API_KEY=api_key,
            PASSPORT_KEY_SECRET="bench-secret-" + secrets.token_hex(16),
            PASSPORT_MAX_CONCURRENT_STEPS=str(args.max_concurrent_steps or k),
            NO_PROXY="127.0.0.1,localhost",
            PATH=f"{BIN}:{os.environ.get('PATH', '')}",
        )
        # The operator's path to the global limit (also creates the instance's tables).
        run_cli([str(BIN / "dagster"), "instance", "concurrency", "set", "gemini", str(k)], env)
        got = run_cli([str(BIN / "dagster"), "instance", "concurrency", "get", "gemini"], env)
        result["pool_setting"] = got.strip().splitlines()[-1] if got.strip() else ""
        log(f"pool: {result['pool_setting']}")

        month_keys = [month.key for month in workload.months(m)]
        sampler = TreeSampler()
        pg_proc = postmaster()
        daemon_cpu_at_launch = 0.0
        if args.launch == "queue":
            daemon = Launched(
                "daemon",
                [str(BIN / "dagster-daemon"), "run", "-w", str(REPO / "workspace.yaml")],
                env,
                root,
            )
            sampler.add_root(daemon.proc.pid)
            wait_for_daemon(instance, daemon, timeout=180)
            daemon_cpu_at_launch = tree_cpu(psutil.Process(daemon.proc.pid))
            log(f"daemon up (startup CPU {daemon_cpu_at_launch:.1f} s)")
        pg_before = tree_cpu(pg_proc)
        fake_before = tree_cpu(psutil.Process(fake.proc.pid))
        machine_before = machine_busy_cpu()
        bench_cpu_before = psutil.Process().cpu_times()
        sampler.start()
        load_before = os.getloadavg()
        t0 = time.time()
        for key in month_keys:
            verb = "execute" if args.launch == "execute" else "launch"
            # `launch` names the workspace's code location, the one the daemon loads too.
            target = ["-m", "passport_pipeline.definitions"]
            if verb == "launch":
                target = ["-w", str(REPO / "workspace.yaml")]
            one = Launched(
                f"{verb}-{key}",
                [
                    str(BIN / "dagster"),
                    "job",
                    verb,
                    *target,
                    "-j",
                    JOB,
                    "--tags",
                    json.dumps({"dagster/partition": key}),
                ],
                env,
                root,
            )
            sampler.add_root(one.proc.pid)
            launched.append(one)
        profilers = [start_profiler(args.py_spy, one, tag) for one in launched if args.py_spy]
        if daemon is not None and args.py_spy:
            profilers.append(start_profiler(args.py_spy, daemon, tag))
        log(f"{args.launch}: {len(launched)} month(s) {month_keys}; ideal {ideal:.0f} s")
        finished_at, runs, timed_out = wait_for_runs(
            args.launch, launched, instance, m, t0, timeout
        )
        daemon_cpu_at_end = tree_cpu(psutil.Process(daemon.proc.pid)) if daemon else 0.0
        pg_after = tree_cpu(pg_proc)
        fake_after = tree_cpu(psutil.Process(fake.proc.pid))
        machine_after = machine_busy_cpu()
        bench_cpu_after = psutil.Process().cpu_times()
        load_after = os.getloadavg()
        sampler.stop()
        for one in launched:  # `job launch` returns at once; `job execute` has exited already
            try:
                one.proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                stop_process(one.proc)
            one.poll()
        if daemon is not None:
            stop_process(daemon.proc, timeout=90)
        for profiler in profilers:
            stop_process(profiler, timeout=60, sig=signal.SIGINT)
        usages = {one.name: one.usage() for one in launched}
        daemon_usage = daemon.usage() if daemon else None

        # -- figures ---------------------------------------------------------------------
        stats = fake.stats()
        offset = stats["time_now"] - stats["monotonic_now"]
        server_intervals = [(s + offset, e + offset if e else None) for s, e in stats["intervals"]]
        server = in_flight_figures(server_intervals, k)
        launch_cpu = sum(u["utime"] + u["stime"] for u in usages.values())
        daemon_cpu = daemon_cpu_at_end - daemon_cpu_at_launch if daemon else 0.0
        orchestration_cpu = launch_cpu + daemon_cpu
        pg_cpu = pg_after - pg_before
        makespan = finished_at - t0
        run_span = None
        if runs and all(r["end_time"] for r in runs):
            run_span = max(r["end_time"] for r in runs) - t0
        steps_view = step_intervals(instance.step_events())
        pipeline_view = in_flight_figures(steps_view["intervals"], k)
        workers_view = in_flight_figures(steps_view["workers"], k)
        event_rows = instance.event_rows()
        bench_cpu = (bench_cpu_after.user - bench_cpu_before.user) + (
            bench_cpu_after.system - bench_cpu_before.system
        )
        machine_busy = machine_after - machine_before
        fake_cpu = fake_after - fake_before
        others_cpu = machine_busy - orchestration_cpu - pg_cpu - fake_cpu - bench_cpu
        result["pipeline"] = {
            "timed_out": timed_out,
            "runs": [{**r} for r in runs],
            "run_statuses": dict(Counter(r["status"] for r in runs)),
            "launcher_exit_codes": {name: u.get("rc") for name, u in usages.items()},
            "makespan_s": makespan,
            "makespan_run_records_s": run_span,
            "ideal_s": ideal,
            "ratio": makespan / ideal if ideal else None,
            "server_generate_requests": stats["generate_requests"],
            "server_outcomes": stats["outcomes"],
            "server_max_in_flight": stats["max_in_flight"],
            "server_max_in_flight_intervals": server["max"],
            "server_mean_in_flight": server["mean_window"],
            "server_mean_window_s": server["window_s"],
            "first_request_after_launch_s": (
                min(s for s, _ in server_intervals) - t0 if server_intervals else None
            ),
            "last_answer_to_finish_s": (
                finished_at - max(e for _, e in server_intervals if e) if server_intervals else None
            ),
            "launch_tree_cpu_s": launch_cpu,
            "daemon_cpu_s": daemon_cpu,
            "daemon_startup_cpu_s": daemon_cpu_at_launch,
            "postgres_cpu_s": pg_cpu,
            "cpu_s_per_step_processes": orchestration_cpu / steps,
            "cpu_s_per_step_postgres": pg_cpu / steps,
            "cpu_s_per_step": (orchestration_cpu + pg_cpu) / steps,
            "peak_pss_bytes": sampler.peak_pss,
            "peak_rss_bytes": sampler.peak_rss,
            "peak_processes": sampler.peak_procs,
            "pss_samples": sampler.samples,
            "max_single_process_rss_kib": max(
                [u.get("maxrss_kib", 0) for u in usages.values()]
                + ([daemon_usage.get("maxrss_kib", 0)] if daemon_usage else [])
            ),
            "event_log_rows": event_rows,
            "event_log_rows_per_step": event_rows / steps,
            "event_types": dict(instance.event_types().most_common()),
            "pipeline_max_in_flight": pipeline_view["max"],
            "pipeline_mean_in_flight": pipeline_view["mean_window"],
            "pipeline_max_workers": workers_view["max"],
            "pipeline_mean_workers": workers_view["mean_window"],
            "step_spawn_median_s": _median(steps_view["spawn"]),
            "step_spawn_p95_s": _p95(steps_view["spawn"]),
            "step_started_to_start_median_s": _median(steps_view["to_start"]),
            "step_body_median_s": _median(steps_view["body"]),
            "step_body_p95_s": _p95(steps_view["body"]),
            "bench_sampler_cpu_s": bench_cpu,
            "fake_gemini_cpu_s": fake_cpu,
            "machine_busy_cpu_s": machine_busy,
            "others_cpu_s": others_cpu,
            "others_cores": others_cpu / makespan if makespan else None,
            "loadavg_before": load_before,
            "loadavg_after": load_after,
        }
        result["raw"] = {  # for later analysis: absolute time.time() stamps
            "t0": t0,
            "server_intervals": server_intervals,
            "step_intervals": steps_view["intervals"],
            "pss_series": sampler.pss_series,
        }
        if timed_out or any(u.get("rc") for u in usages.values()):
            for one in launched:
                log(f"--- {one.name} (tail) ---\n{one.tail()}")

        # -- baseline --------------------------------------------------------------------
        if not args.no_baseline:
            fake.reset()
            log(f"baseline: {steps} calls through ThreadPoolExecutor({k})")
            out = root / "baseline.json"
            completed = subprocess.run(
                [
                    sys.executable,
                    str(REPO / "bench" / "baseline.py"),
                    "--base-url",
                    fake.base_url,
                    "--users",
                    str(n),
                    "--months",
                    str(m),
                    "--pool",
                    str(k),
                    str(out),
                ],
                cwd=REPO,
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
            if not out.exists():
                raise RuntimeError(f"baseline failed: {completed.stderr[-2000:]}")
            base = json.loads(out.read_text())
            bstats = fake.stats()
            boffset = bstats["time_now"] - bstats["monotonic_now"]
            bview = in_flight_figures(
                [(s + boffset, e + boffset if e else None) for s, e in bstats["intervals"]], k
            )
            base.update(
                ratio=base["makespan_s"] / ideal if ideal else None,
                server_generate_requests=bstats["generate_requests"],
                server_max_in_flight=bstats["max_in_flight"],
                server_mean_in_flight=bview["mean_window"],
            )
            result["baseline"] = base
            p = result["pipeline"]
            result["comparison"] = {
                "makespan_pipeline_over_baseline": p["makespan_s"] / base["makespan_s"],
                "cpu_s_per_step_beyond_baseline": p["cpu_s_per_step"] - base["cpu_s_per_call"],
                "peak_pss_pipeline_over_baseline": p["peak_pss_bytes"]
                / max(1, base["peak_pss_bytes"]),
            }
        result["targets"] = targets(result, k)
    except BaseException as error:
        result["error"] = f"{type(error).__name__}: {error}"
        log(f"FAILED: {result['error']}\n{traceback.format_exc()}")
        for one in launched:
            stop_process(one.proc, timeout=20)
        if daemon is not None:
            stop_process(daemon.proc, timeout=30)
        if isinstance(error, KeyboardInterrupt):
            raise
    finally:
        if fake is not None:
            fake.stop()
        if not args.keep:
            for db in created_dbs:
                with suppress(Exception):
                    pg_admin(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            shutil.rmtree(root, ignore_errors=True)
        else:
            result["kept"] = {"workdir": str(root), "databases": created_dbs}
    result["finished_at"] = datetime.now().astimezone().isoformat(timespec="seconds")
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    out_path = OUT_DIR / f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-{tag}.json"
    out_path.write_text(json.dumps(result, indent=2, default=str))
    print(render_table(result))
    print(f"\nJSON: {out_path}")
    return 1 if "error" in result or result.get("pipeline", {}).get("timed_out") else 0


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
        stderr=(OUT_DIR / f"{tag}-{one.name}-profile.log").open("w"),
        start_new_session=True,
    )


def run_cli(args: list[str], env: dict, timeout: float = 180) -> str:
    completed = subprocess.run(
        args, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{' '.join(args[1:])} failed: {completed.stderr[-2000:]}")
    return completed.stdout


def wait_for_daemon(instance: InstanceDb, daemon: Launched, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if daemon.poll():
            raise RuntimeError(f"dagster-daemon exited:\n{daemon.tail()}")
        with suppress(Exception):
            rows = instance.query_runs_db("SELECT daemon_type FROM daemon_heartbeats")
            if any(r[0] == "QUEUED_RUN_COORDINATOR" for r in rows):
                return
        time.sleep(1.0)
    raise RuntimeError(f"dagster-daemon sent no heartbeat within {timeout:.0f} s")


def wait_for_runs(launch, launched, instance, months, t0, timeout):
    """Until every month's run is finished: (finished wall time, run records, timed out)."""
    deadline = t0 + timeout
    last_note = time.time()
    while time.time() < deadline:
        time.sleep(0.5)
        if launch == "execute":
            if all(one.poll() for one in launched):
                return max(one.ended for one in launched), instance.runs(), False
        else:
            with suppress(Exception):
                runs = instance.runs()
                if len(runs) >= months and all(r["status"] in TERMINAL for r in runs):
                    return time.time(), runs, False
            launches_done = all(one.poll() for one in launched)
            if (
                launches_done
                and any(one.proc.returncode for one in launched)
                and not instance.runs()
            ):
                raise RuntimeError("dagster job launch failed:\n" + launched[0].tail())
        if time.time() - last_note > 60:
            last_note = time.time()
            with suppress(Exception):
                statuses = Counter(r["status"] for r in instance.runs())
                log(f"{time.time() - t0:.0f} s: runs {dict(statuses)}")
    for one in launched:
        stop_process(one.proc, timeout=30)
    return time.time(), instance.runs(), True


def instance_storage_yaml(db: str) -> str:
    """The instance's storage block for a fresh PostgreSQL database."""
    # SQLAlchemy 2.1 reads plain postgresql:// as psycopg 3, which is not installed.
    postgres_db = (
        "postgres_db:\n"
        "  username: postgres\n  hostname: 127.0.0.1\n"
        f"  db_name: {db}\n  port: 5432\n  scheme: postgresql+psycopg2\n"
    )
    return "storage:\n  postgres:\n" + _indent(postgres_db, 4)


def _indent(text: str, spaces: int) -> str:
    return "".join(" " * spaces + line + "\n" for line in text.splitlines())


def machine_busy_cpu() -> float:
    """CPU-s the whole machine has been busy (all cores, /proc/stat, idle and iowait excluded)."""
    t = psutil.cpu_times()
    not_busy = ("idle", "iowait", "steal", "guest", "guest_nice")  # guest is inside user
    return sum(t) - sum(getattr(t, name, 0.0) for name in not_busy)


def code_fingerprint() -> dict:
    """Which pipeline was measured: a hash of passport_pipeline/ and dagster.yaml (others edit
    the checkout while benchmarks run), and the newest file's modification time."""
    import hashlib

    files = [*sorted(REPO.glob("passport_pipeline/**/*.py")), REPO / "dagster.yaml"]
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    newest = max(files, key=lambda f: f.stat().st_mtime)
    return {
        "sha256_12": digest.hexdigest()[:12],
        "newest_file": str(newest.relative_to(REPO)),
        "newest_mtime": datetime.fromtimestamp(newest.stat().st_mtime).isoformat(
            timespec="seconds"
        ),
    }


def machine_facts() -> dict:
    import dagster

    return {
        "dagster": dagster.__version__,
        "python": platform.python_version(),
        "nproc": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "kernel": platform.release(),
        "loadavg_at_start": os.getloadavg(),
    }


def targets(result: dict, k: int) -> dict:
    """Issue 4's targets that this run's options speak to (None: not applicable)."""
    p, o, b = result["pipeline"], result["options"], result.get("baseline")
    c = result.get("comparison", {})
    one_month_ideal = math.ceil(o["users"] / k) * o["latency_s"]
    found = {
        "max_in_flight_le_K": p["server_max_in_flight"] <= k,
        "mean_in_flight_ge_0.94K": (
            p["server_mean_in_flight"] >= 0.94 * k if p["server_mean_in_flight"] else None
        ),
        "peak_pss_le_2GiB": p["peak_pss_bytes"] <= 2 * 2**30,
    }
    if o["months"] == 1:
        found["makespan_le_1.05_ideal"] = p["ratio"] <= 1.05
        if b:
            found["makespan_le_1.05_baseline"] = c["makespan_pipeline_over_baseline"] <= 1.05
    else:
        found["makespan_le_1.10_x_months_x_one_month_ideal"] = (
            p["makespan_s"] <= 1.10 * o["months"] * one_month_ideal
        )
    if b:
        found["cpu_beyond_baseline_le_0.15s"] = c["cpu_s_per_step_beyond_baseline"] <= 0.15
    return found


def render_table(result: dict) -> str:
    o, mach = result["options"], result["machine"]
    p, b, c = result.get("pipeline", {}), result.get("baseline"), result.get("comparison", {})
    rows: list[tuple[str, str]] = []

    def add(name: str, value, fmt: str = "{}") -> None:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            rows.append((name, "n/a"))
        else:
            rows.append((name, fmt.format(value)))

    gib = 2**30
    add("date", result["started_at"])
    add(
        "machine",
        f"nproc {mach['nproc']}, {mach['memory_gib']} GiB, kernel {mach['kernel']}, "
        f"Python {mach['python']}",
    )
    add("Dagster", mach["dagster"])
    code = result.get("code", {})
    add(
        "pipeline code (sha256 of passport_pipeline/ + dagster.yaml)",
        f"{code.get('sha256_12')} (newest: {code.get('newest_file')} {code.get('newest_mtime')})",
    )
    if o.get("profiled_with_py_spy"):
        add("PROFILED", "py-spy record ran on every launched process: figures are perturbed")
    if o.get("extra_instance_yaml"):
        add("extra instance YAML", " ".join(o["extra_instance_yaml"].split()))
    add(
        "load average at start / during (1-min, before → after)",
        f"{mach['loadavg_at_start'][0]:.2f} / "
        + (f"{p['loadavg_before'][0]:.2f} → {p['loadavg_after'][0]:.2f}" if p else "n/a"),
    )
    add(
        "options",
        f"N={o['users']} L={o['latency_s']:g}s K={o['pool']} storage={o['storage']} "
        f"months={o['months']} launch={o['launch']} "
        f"max_concurrent_steps={o['max_concurrent_steps']}",
    )
    if "error" in result:
        add("ERROR", " ".join(result["error"].split())[-300:])
    if p:
        add(
            "runs (status)",
            ", ".join(f"{s}={n}" for s, n in p["run_statuses"].items())
            + (" TIMED OUT" if p["timed_out"] else ""),
        )
        add("generate requests at server", p["server_generate_requests"])
        add("makespan (first launch → last run finished)", p["makespan_s"], "{:.1f} s")
        add(
            "makespan by run records (→ last run end_time)", p["makespan_run_records_s"], "{:.1f} s"
        )
        add("ideal ⌈N·M/K⌉·L", p["ideal_s"], "{:.0f} s")
        add("ratio makespan / ideal", p["ratio"], "{:.3f}")
        add("first request after launch", p["first_request_after_launch_s"], "{:.1f} s")
        add("last answer → run finished", p["last_answer_to_finish_s"], "{:.1f} s")
        add("max in flight (server)", p["server_max_in_flight"])
        add(
            "mean in flight (server, K-th start → K-th-last end)",
            p["server_mean_in_flight"],
            "{:.2f}",
        )
        add("  that window", p["server_mean_window_s"], "{:.1f} s")
        add(
            "max / mean in flight (pipeline's step events)",
            f"{p['pipeline_max_in_flight']} / "
            + (f"{p['pipeline_mean_in_flight']:.2f}" if p["pipeline_mean_in_flight"] else "n/a"),
        )
        add(
            "max / mean cover steps holding a worker (STEP_WORKER_STARTING → end)",
            f"{p['pipeline_max_workers']} / "
            + (f"{p['pipeline_mean_workers']:.2f}" if p["pipeline_mean_workers"] else "n/a"),
        )
        add("orchestration CPU: launched trees", p["launch_tree_cpu_s"], "{:.1f} s")
        if o["launch"] == "queue":
            add(
                "orchestration CPU: daemon tree during runs (startup excluded)",
                f"{p['daemon_cpu_s']:.1f} s (startup {p['daemon_startup_cpu_s']:.1f} s)",
            )
        add("orchestration CPU: PostgreSQL server (all of it)", p["postgres_cpu_s"], "{:.1f} s")
        add(
            "CPU-s per user step (processes + Postgres)",
            f"{p['cpu_s_per_step']:.3f} = {p['cpu_s_per_step_processes']:.3f} + "
            f"{p['cpu_s_per_step_postgres']:.3f}",
        )
        add("peak PSS of launched trees (sum)", p["peak_pss_bytes"] / gib, "{:.2f} GiB")
        add("peak RSS of launched trees (sum)", p["peak_rss_bytes"] / gib, "{:.2f} GiB")
        add("peak processes in launched trees", p["peak_processes"])
        add(
            "event-log rows (per user step)",
            f"{p['event_log_rows']} ({p['event_log_rows_per_step']:.1f})",
        )
        add(
            "step: worker starting → started (median / p95)",
            _pair(p["step_spawn_median_s"], p["step_spawn_p95_s"]),
        )
        add(
            "step: worker started → STEP_START (median)",
            p["step_started_to_start_median_s"],
            "{:.2f} s",
        )
        add(
            "step: STEP_START → end (median / p95)",
            _pair(p["step_body_median_s"], p["step_body_p95_s"]),
        )
        add("bench's own CPU while sampling", p["bench_sampler_cpu_s"], "{:.1f} s")
        if "others_cpu_s" in p:
            add(
                "machine busy / fake Gemini / everything else (others' work)",
                f"{p['machine_busy_cpu_s']:.0f} s / {p['fake_gemini_cpu_s']:.1f} s / "
                f"{p['others_cpu_s']:.0f} s = {p['others_cores']:.2f} cores on average",
            )
    if b:
        add("baseline: makespan (ThreadPoolExecutor(K))", b["makespan_s"], "{:.1f} s")
        add("baseline: ratio / ideal", b["ratio"], "{:.3f}")
        add("baseline: errors", b["errors"])
        add(
            "baseline: max / mean in flight (server)",
            f"{b['server_max_in_flight']} / "
            + (f"{b['server_mean_in_flight']:.2f}" if b["server_mean_in_flight"] else "n/a"),
        )
        add("baseline: CPU-s per call", b["cpu_s_per_call"], "{:.4f}")
        add(
            "baseline: peak PSS / RSS",
            f"{b['peak_pss_bytes'] / 2**20:.0f} MiB / {b['peak_rss_bytes'] / 2**20:.0f} MiB",
        )
        add("pipeline / baseline makespan", c["makespan_pipeline_over_baseline"], "{:.3f}")
        add(
            "CPU-s per step beyond baseline's per call",
            c["cpu_s_per_step_beyond_baseline"],
            "{:.3f}",
        )
    for name, ok in result.get("targets", {}).items():
        add(f"target {name}", "n/a" if ok is None else ("met" if ok else "MISSED"))
    width = max(len(name) for name, _ in rows)
    line = "-" * (width + 2 + max(len(v) for _, v in rows))
    return "\n".join([line, *(f"{name:<{width}}  {value}" for name, value in rows), line])


def _pair(a: float | None, b: float | None) -> str:
    return "n/a" if a is None else f"{a:.2f} s / {b:.2f} s"


if __name__ == "__main__":
    sys.exit(main())
