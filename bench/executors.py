"""The same month on each executor, one after the other, in one table (issue 9).

    .venv/bin/python bench/executors.py [--users 200] [--latency 10] [--pool 50]
        [--executors threads,multiprocess] [--no-baseline]

Each executor's run is a full ``bench/run_bench.py`` run (fresh databases, a fake Gemini in its
own process, ``dagster job execute``, the same sampling) with ``--executor``, on the production
instance of ``deploy/dagster.yaml`` (pooled connections, atomic claim); the bare thread-pool
baseline runs once, after the first executor. Prints one table; each run's JSON stays in
bench/out/.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench import run_bench  # noqa: E402
from bench.launch import OUT_DIR  # noqa: E402

GIB = 1024**3


def run_one(executor: str, argv: list[str]) -> dict:
    """One run_bench run with PASSPORT_EXECUTOR=executor; its JSON result."""
    before = set(OUT_DIR.glob("*.json")) if OUT_DIR.exists() else set()
    run_bench.main([*argv, "--executor", executor])
    [written] = set(OUT_DIR.glob("*.json")) - before
    return json.loads(written.read_text()) | {"json": str(written)}


def figures(result: dict) -> dict[str, str]:
    p = result.get("pipeline", {})
    if not p:
        return {"error": result.get("error", "no result")}
    pss = p.get("peak_pss_bytes") or 0
    return {
        "runs": ", ".join(f"{k}={v}" for k, v in p["run_statuses"].items())
        + (" (timed out)" if p["timed_out"] else ""),
        "generate requests at server": str(p["server_generate_requests"]),
        "makespan / ideal": f"{p['makespan_s']:.1f} s / {p['ideal_s']:.0f} s = {p['ratio']:.3f}",
        "mean / max in flight (server)": (
            f"{p['server_mean_in_flight']:.1f} / {p['server_max_in_flight']}"
        ),
        "CPU-s per step: processes + PostgreSQL": (
            f"{p['cpu_s_per_step']:.3f} = {p['cpu_s_per_step_processes']:.3f} + "
            f"{p['cpu_s_per_step_postgres']:.3f}"
        ),
        "peak PSS (launched trees)": f"{pss / GIB:.2f} GiB",
        "peak processes": str(p["peak_processes"]),
        "others' load (cores, avg)": f"{p['others_cores']:.2f}",
        "load average before": f"{p['loadavg_before'][0]:.2f}",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--latency", type=float, default=10.0)
    parser.add_argument("--pool", type=int, default=50)
    parser.add_argument("--max-concurrent-steps", type=int, default=None)
    parser.add_argument("--executors", default="threads,multiprocess")
    parser.add_argument("--timeout", type=float, default=None)
    parser.add_argument("--no-baseline", action="store_true")
    args = parser.parse_args(argv)
    common = ["--users", str(args.users), "--latency", str(args.latency)]
    common += ["--pool", str(args.pool), "--storage", "postgres"]
    if args.max_concurrent_steps:
        common += ["--max-concurrent-steps", str(args.max_concurrent_steps)]
    if args.timeout:
        common += ["--timeout", str(args.timeout)]
    results: dict[str, dict] = {}
    baseline = None
    for index, executor in enumerate(args.executors.split(",")):
        with_baseline = index == 0 and not args.no_baseline
        argv_one = common + ([] if with_baseline else ["--no-baseline"])
        results[executor] = run_one(executor, argv_one)
        baseline = baseline or results[executor].get("baseline")
    rows = {name: figures(result) for name, result in results.items()}
    keys = list(dict.fromkeys(key for row in rows.values() for key in row))
    width = max(len(key) for key in keys) + 2
    print(
        f"\nN={args.users} L={args.latency:g}s pool={args.pool} storage=deploy/dagster.yaml "
        f"(2-core machine shared with other work: figures are noisy)"
    )
    print(" " * width + "".join(f"{name:<34}" for name in rows))
    for key in keys:
        print(f"{key:<{width}}" + "".join(f"{rows[n].get(key, ''):<34}" for n in rows))
    if baseline:
        print(
            f"{'thread-pool baseline':<{width}}{baseline['makespan_s']:.1f} s, ratio "
            f"{baseline['ratio']:.3f}, mean in flight {baseline['server_mean_in_flight']:.1f}"
        )
    for name, result in results.items():
        print(f"{name}: {result['json']}")
    return 0 if all("error" not in r for r in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
