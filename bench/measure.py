"""What the benchmark measures: the fake server's record and the Dagster instance's own (through
DagsterInstance, as the progress command reads it), with the CPU and memory of
``process_usage.py``, into the pipeline's figures.

In-flight figures use the pipeline's own arithmetic (``domain/progress.py``): the same
``in_flight`` the progress command prints, over the steady window of a pool of K.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from dagster import DagsterInstance

from bench.process_usage import Snapshot, TreeSampler
from passport_pipeline.covers.names import user_of_step
from passport_pipeline.domain.progress import (
    StepEvent,
    StepEventKind,
    cover_step_intervals,
    in_flight,
    steady_window,
)

STEP_KINDS = {
    "STEP_START": StepEventKind.START,
    "STEP_SUCCESS": StepEventKind.SUCCESS,
    "STEP_FAILURE": StepEventKind.FAILURE,
    "STEP_UP_FOR_RETRY": StepEventKind.RETRY,
}
WORKER_EVENTS = ("STEP_WORKER_STARTING", "STEP_WORKER_STARTED")


class InstanceRecords:
    """The Dagster instance's own records of the runs, through its public API."""

    def __init__(self, instance: DagsterInstance):
        self.instance = instance

    def runs(self) -> list[dict]:
        return [
            {
                "run_id": record.dagster_run.run_id,
                "status": record.dagster_run.status.value,
                "start_time": record.start_time,
                "end_time": record.end_time,
            }
            for record in self.instance.get_run_records()
        ]

    def daemon_running(self, daemon_type: str) -> bool:
        return daemon_type in self.instance.get_daemon_heartbeats()

    def event_log(self) -> tuple[Counter, list[tuple[str, str, str, float]]]:
        """Every run's events by type, and the cover steps' (run, step, type, timestamp)."""
        types: Counter = Counter()
        steps = []
        for run in self.runs():
            for entry in self.instance.all_logs(run["run_id"]):
                event = entry.dagster_event
                kind = event.event_type_value if event else "(log message)"
                types[kind] += 1
                step = entry.step_key or ""
                if user_of_step(step) and (kind in STEP_KINDS or kind in WORKER_EVENTS):
                    steps.append((run["run_id"], step, kind, entry.timestamp))
        return types, steps


def in_flight_figures(intervals: list[tuple[float, float | None]], k: int) -> dict:
    """Max in flight, and the time-weighted mean in the steady window of a pool of k."""
    done = [(start, end) for start, end in intervals if end is not None]
    window = steady_window(done, k)
    figures = in_flight(done, window)
    return {
        "max": figures.max,
        "mean_window": figures.mean if window else None,
        "window_s": window[1] - window[0] if window else 0.0,
    }


def server_intervals(stats: dict) -> list[tuple[float, float | None]]:
    """The fake server's generate intervals, from its monotonic clock to time.time()."""
    offset = stats["time_now"] - stats["monotonic_now"]
    return [(s + offset, e + offset if e else None) for s, e in stats["intervals"]]


def step_views(events: list[tuple[str, str, str, float]]) -> dict:
    """The pipeline's own view: per step attempt, worker start → start → end."""
    by_step: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    by_run: dict[str, list[StepEvent]] = defaultdict(list)  # a re-execution's steps are its own
    for run_id, step, kind, ts in events:
        by_step[(run_id, step)][kind].append(ts)
        if kind in STEP_KINDS:
            by_run[run_id].append(StepEvent(user_of_step(step), STEP_KINDS[kind], ts))
    workers, spawn, to_start, body = [], [], [], []
    for kinds in by_step.values():
        starts = kinds.get("STEP_START", [])
        ends = [*kinds.get("STEP_SUCCESS", []), *kinds.get("STEP_FAILURE", [])]
        ends += kinds.get("STEP_UP_FOR_RETRY", [])
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
        "intervals": [pair for run in by_run.values() for pair in cover_step_intervals(run)],
        "workers": workers,
        "spawn": spawn,
        "to_start": to_start,
        "body": body,
    }


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def p95(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


@dataclass
class Observed:
    """What the launch saw: when, the runs' records, the commands' CPU and the counters."""

    t0: float
    before: Snapshot
    finished_at: float = 0.0
    timed_out: bool = False
    runs: list[dict] = field(default_factory=list)
    usages: dict[str, dict] = field(default_factory=dict)
    daemon_usage: dict | None = None
    daemon_startup_cpu: float = 0.0
    after: Snapshot | None = None


def pipeline_figures(
    seen: Observed, stats: dict, records: InstanceRecords, sampler: TreeSampler, options
) -> tuple[dict, dict]:
    """The pipeline's figures for the table, and the raw series behind them."""
    t0, finished_at, runs, usages = seen.t0, seen.finished_at, seen.runs, seen.usages
    before, after, daemon_usage = seen.before, seen.after, seen.daemon_usage
    k, steps = options.pool, options.users * options.months
    ideal = math.ceil(steps / k) * options.latency
    served = server_intervals(stats)
    server = in_flight_figures(served, k)
    launch_cpu = sum(u["utime"] + u["stime"] for u in usages.values())
    daemon_cpu = after.daemon - before.daemon if daemon_usage is not None else 0.0
    orchestration_cpu = launch_cpu + daemon_cpu
    pg_cpu = after.postgres - before.postgres
    makespan = finished_at - t0
    run_span = None
    if runs and all(r["end_time"] for r in runs):
        run_span = max(r["end_time"] for r in runs) - t0
    event_types, step_events = records.event_log()
    views = step_views(step_events)
    pipeline_view = in_flight_figures(views["intervals"], k)
    workers_view = in_flight_figures(views["workers"], k)
    event_rows = sum(event_types.values())
    bench_cpu = after.bench - before.bench
    machine_busy = after.machine - before.machine
    fake_cpu = after.fake - before.fake
    others_cpu = machine_busy - orchestration_cpu - pg_cpu - fake_cpu - bench_cpu
    figures = {
        "timed_out": seen.timed_out,
        "runs": runs,
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
        "first_request_after_launch_s": min(s for s, _ in served) - t0 if served else None,
        "last_answer_to_finish_s": (
            finished_at - max(e for _, e in served if e) if served else None
        ),
        "launch_tree_cpu_s": launch_cpu,
        "daemon_cpu_s": daemon_cpu,
        "daemon_startup_cpu_s": seen.daemon_startup_cpu,
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
        "event_types": dict(event_types.most_common()),
        "pipeline_max_in_flight": pipeline_view["max"],
        "pipeline_mean_in_flight": pipeline_view["mean_window"],
        "pipeline_max_workers": workers_view["max"],
        "pipeline_mean_workers": workers_view["mean_window"],
        "step_spawn_median_s": median(views["spawn"]),
        "step_spawn_p95_s": p95(views["spawn"]),
        "step_started_to_start_median_s": median(views["to_start"]),
        "step_body_median_s": median(views["body"]),
        "step_body_p95_s": p95(views["body"]),
        "bench_sampler_cpu_s": bench_cpu,
        "fake_gemini_cpu_s": fake_cpu,
        "machine_busy_cpu_s": machine_busy,
        "others_cpu_s": others_cpu,
        "others_cores": others_cpu / makespan if makespan else None,
        "loadavg_before": before.loadavg,
        "loadavg_after": after.loadavg,
    }
    raw = {  # for later analysis: absolute time.time() stamps
        "t0": t0,
        "server_intervals": served,
        "step_intervals": views["intervals"],
        "pss_series": sampler.pss_series,
    }
    return figures, raw
