"""Benchmark the real cover job against a local Gemini-speaking server (issue 4).

    .venv/bin/python bench/run_bench.py [--users 1000] [--latency 30] [--pool 50]
        [--storage postgres|sqlite] [--months 1] [--launch execute|queue]
        [--no-baseline] [--keep]

See bench/README.md for what each figure means. Everything runs on 127.0.0.1: a fake Gemini
in its own process, a fresh PostgreSQL app database, a fresh Dagster instance (the checkout's
dagster.yaml on sqlite, or the production deploy/dagster.yaml on a fresh PostgreSQL database),
and the operator's own commands (`dagster instance concurrency set`, `dagster job execute` /
`dagster-daemon run` + `dagster job launch`). Prints one table and writes it as JSON to
bench/out/<timestamp>.json. The steps: setup.py → launch.py → measure.py → report.py.
"""

from __future__ import annotations

import argparse
import math
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from datetime import datetime
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench import report, workload  # noqa: E402
from bench.launch import (  # noqa: E402
    Launched,
    launch_month,
    run_baseline,
    start_daemon,
    start_profiler,
    wait_for_daemon,
    wait_for_runs,
)
from bench.measure import (  # noqa: E402
    InstanceRecords,
    Observed,
    in_flight_figures,
    pipeline_figures,
    server_intervals,
)
from bench.process_usage import Snapshot, TreeSampler, postmaster, tree_cpu  # noqa: E402
from bench.setup import World, log, stop_process, world  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1000, help="N users per month")
    parser.add_argument("--latency", type=float, default=30.0, help="L s per generation")
    parser.add_argument("--pool", type=int, default=50, help="K: the gemini pool limit")
    parser.add_argument(
        "--storage",
        choices=["postgres", "sqlite"],
        default="postgres",
        help="postgres: the production deploy/dagster.yaml on a fresh database; "
        "sqlite: the checkout's dagster.yaml",
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
    parser.add_argument(
        "--executor",
        choices=["threads", "multiprocess"],
        default=None,
        help="PASSPORT_EXECUTOR for the pipeline's run (default: the settings' default)",
    )
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep temp dirs and databases")
    args = parser.parse_args(argv)
    if min(args.users, args.pool, args.months) < 1 or args.latency < 0:
        parser.error("--users, --pool and --months must be ≥ 1, --latency ≥ 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ideal = math.ceil(args.users * args.months / args.pool) * args.latency
    timeout = args.timeout or max(900.0, 8 * ideal + 600)
    tag = secrets.token_hex(4)
    root = Path(tempfile.mkdtemp(prefix=f"passport_bench_{tag}_"))
    result: dict = {
        "options": {
            "users": args.users,
            "latency_s": args.latency,
            "pool": args.pool,
            "storage": args.storage,
            "months": args.months,
            "launch": args.launch,
            "baseline": not args.no_baseline,
            "max_concurrent_steps": args.max_concurrent_steps or args.pool,
            "profiled_with_py_spy": bool(args.py_spy),
            "extra_instance_yaml": (
                args.extra_instance_yaml.read_text() if args.extra_instance_yaml else None
            ),
        },
        "code": report.code_fingerprint(),
        "machine": report.machine_facts(),
        "started_at": datetime.now().astimezone().isoformat(timespec="seconds"),
        "workdir": str(root),
    }
    databases: list[str] = []
    try:
        log(f"workdir {root}")
        with world(args, root, tag, result, databases) as here:
            result["pipeline"], result["raw"] = run_pipeline(args, here, tag, ideal, timeout)
            if not args.no_baseline:
                result["baseline"], result["comparison"] = baseline(
                    args, here, ideal, timeout, result
                )
        result["targets"] = report.targets(result, args.pool)
    except BaseException as error:
        result["error"] = f"{type(error).__name__}: {error}"
        log(f"FAILED: {result['error']}\n{traceback.format_exc()}")
        if isinstance(error, KeyboardInterrupt):
            raise
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            result["kept"] = {"workdir": str(root), "databases": databases}
    result["finished_at"] = datetime.now().astimezone().isoformat(timespec="seconds")
    out_path = report.write(result, tag)
    print(report.render_table(result))
    print(f"\nJSON: {out_path}")
    return 1 if "error" in result or result.get("pipeline", {}).get("timed_out") else 0


def run_pipeline(args, here: World, tag: str, ideal: float, timeout: float) -> tuple[dict, dict]:
    """Launch the months, wait for their runs, and measure them (see bench/README.md)."""
    month_keys = [month.key for month in workload.months(args.months)]
    launched: list[Launched] = []
    daemon: Launched | None = None
    with here.deployment.instance() as instance:
        records = InstanceRecords(instance)
        try:
            sampler = TreeSampler()
            pg = postmaster(here.admin)
            daemon_startup_cpu = 0.0
            if args.launch == "queue":
                daemon = start_daemon(here.deployment)
                sampler.add_root(daemon.proc.pid)
                wait_for_daemon(records, daemon, timeout=180)
                daemon_startup_cpu = tree_cpu(psutil.Process(daemon.proc.pid))
                log(f"daemon up (startup CPU {daemon_startup_cpu:.1f} s)")
            daemon_pid = daemon.proc.pid if daemon else None
            before = Snapshot.take(pg, here.fake.proc.pid, daemon_pid)
            sampler.start()
            seen = Observed(time.time(), before, daemon_startup_cpu=daemon_startup_cpu)
            for key in month_keys:
                launched.append(launch_month(here.deployment, args.launch, key))
                sampler.add_root(launched[-1].proc.pid)
            profilers = [start_profiler(args.py_spy, one, tag) for one in launched if args.py_spy]
            if daemon is not None and args.py_spy:
                profilers.append(start_profiler(args.py_spy, daemon, tag))
            log(f"{args.launch}: {len(launched)} month(s) {month_keys}; ideal {ideal:.0f} s")
            seen.finished_at, seen.runs, seen.timed_out = wait_for_runs(
                args.launch, launched, records, args.months, seen.t0, timeout
            )
            seen.after = Snapshot.take(pg, here.fake.proc.pid, daemon_pid)
            sampler.stop()
            for one in launched:  # `job launch` returns at once; `job execute` has exited
                try:
                    one.proc.wait(timeout=120)
                except subprocess.TimeoutExpired:
                    stop_process(one.proc)
                one.poll()
            if daemon is not None:
                stop_process(daemon.proc, timeout=90)
            for profiler in profilers:
                stop_process(profiler, timeout=60, sig=signal.SIGINT)
        except BaseException:
            for one in launched:
                stop_process(one.proc, timeout=20)
            if daemon is not None:
                stop_process(daemon.proc, timeout=30)
            raise
        seen.usages = {one.name: one.usage() for one in launched}
        seen.daemon_usage = daemon.usage() if daemon else None
        figures_and_raw = pipeline_figures(seen, here.fake.stats(), records, sampler, args)
    if seen.timed_out or any(u.get("rc") for u in seen.usages.values()):
        for one in launched:
            log(f"--- {one.name} (tail) ---\n{one.tail()}")
    return figures_and_raw


def baseline(args, here: World, ideal: float, timeout: float, result: dict) -> tuple[dict, dict]:
    """The same calls through a bare ThreadPoolExecutor(K), and how the pipeline compares."""
    here.fake.reset()
    log(f"baseline: {args.users * args.months} calls through ThreadPoolExecutor({args.pool})")
    base = run_baseline(here.deployment, here.fake.base_url, args, timeout)
    stats = here.fake.stats()
    view = in_flight_figures(server_intervals(stats), args.pool)
    base.update(
        ratio=base["makespan_s"] / ideal if ideal else None,
        server_generate_requests=stats["generate_requests"],
        server_max_in_flight=stats["max_in_flight"],
        server_mean_in_flight=view["mean_window"],
    )
    p = result["pipeline"]
    comparison = {
        "makespan_pipeline_over_baseline": p["makespan_s"] / base["makespan_s"],
        "cpu_s_per_step_beyond_baseline": p["cpu_s_per_step"] - base["cpu_s_per_call"],
        "peak_pss_pipeline_over_baseline": p["peak_pss_bytes"] / max(1, base["peak_pss_bytes"]),
    }
    return base, comparison


if __name__ == "__main__":
    sys.exit(main())
