"""CPU and memory of process trees: the launched commands, the PostgreSQL server, the machine."""

from __future__ import annotations

import os
import threading
import time
from contextlib import suppress
from dataclasses import dataclass, field

import psutil

SAMPLE_EVERY_S = 1.0  # PSS of ~200 processes costs the bench ~0.1 core at 0.5 s


def tree_cpu(root: psutil.Process) -> float:
    """CPU-s (user+system) of a process and everything it ever started, right now.

    Live processes count their own time and their reaped children's (cutime); a dead
    process's time sits in the cutime of whichever live process reaped it."""
    total = 0.0
    for proc in [root, *children(root)]:
        with suppress(psutil.Error):
            t = proc.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
    return total


def children(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return proc.children(recursive=True)
    except psutil.Error:
        return []


def postmaster(admin) -> psutil.Process:
    """The PostgreSQL server's main process (the parent of this connection's backend)."""
    with admin.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    return psutil.Process(psutil.Process(backend).ppid())


def machine_busy_cpu() -> float:
    """CPU-s the whole machine has been busy (all cores, /proc/stat, idle and iowait excluded)."""
    t = psutil.cpu_times()
    not_busy = ("idle", "iowait", "steal", "guest", "guest_nice")  # guest is inside user
    return sum(t) - sum(getattr(t, name, 0.0) for name in not_busy)


def own_cpu() -> float:
    t = psutil.Process().cpu_times()
    return t.user + t.system


@dataclass
class Snapshot:
    """The CPU counters the figures subtract, read at once (before and after the runs)."""

    postgres: float
    fake: float
    machine: float
    bench: float
    daemon: float
    loadavg: tuple[float, float, float] = field(default_factory=os.getloadavg)

    @classmethod
    def take(cls, pg: psutil.Process, fake_pid: int, daemon_pid: int | None) -> Snapshot:
        daemon = tree_cpu(psutil.Process(daemon_pid)) if daemon_pid else 0.0
        fake = tree_cpu(psutil.Process(fake_pid))
        return cls(tree_cpu(pg), fake, machine_busy_cpu(), own_cpu(), daemon)


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
            for proc in children(root):
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
