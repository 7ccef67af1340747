"""What the benchmark prints and keeps: the table, the JSON, and issue 4's targets."""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
from datetime import datetime
from pathlib import Path

import dagster
import psutil

from passport_pipeline_tests.support.deployment import REPO

OUT_DIR = REPO / "bench" / "out"


def write(result: dict, tag: str) -> Path:
    """The result as JSON in bench/out/ (git-ignored); returns its path."""
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    out_path = OUT_DIR / f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-{tag}.json"
    out_path.write_text(json.dumps(result, indent=2, default=str))
    return out_path


def code_fingerprint() -> dict:
    """Which pipeline was measured: a hash of passport_pipeline/ and dagster.yaml (others edit
    the checkout while benchmarks run), and the newest file's modification time."""
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
