"""Which process runs a run, and whether that process is gone.

A run of ``dagster job execute`` lives in the operator's CLI process, not in a process that
Dagster's run launcher started, so Dagster's run monitoring cannot check it: if the CLI is
killed, the run stays STARTED and keeps its pool slots. Our executor records the run process
in a run tag when the run starts (``RUN_PROCESS_TAG``); this module judges from that record.

A run is judged gone only when the judgment is certain:

- the record is the run's own (re-executions copy their parent's tags),
- it was made on this machine: the same host name, boot and PID namespace (a container), so
  that a PID means the same process here as it did there,
- no process with that PID exists, or it is a zombie, or it started at another time (the PID
  was reused), and
- none of the run's step processes is still running (they outlive a killed CLI and still
  call the model and hold their slot; the run is released once the last of them has ended).

Anything else is "not gone": a run on another machine is never judged from here.
"""

from __future__ import annotations

import os
import socket
from dataclasses import asdict, dataclass

import psutil
from dagster import DagsterEventType, DagsterInstance, DagsterRun

from passport_pipeline.domain.run_state import own_state, own_state_tag

RUN_PROCESS_TAG = "passport/run_process"
# psutil derives start times from clock ticks since boot: the same process reads the same value,
# a later process with a reused PID reads a later one.
START_TIME_TOLERANCE_S = 1.0


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:  # not Linux: one PID space per host
        return ""


@dataclass(frozen=True)
class ProcessIdentity:
    run_id: str
    hostname: str
    boot_time: float
    pid_namespace: str
    pid: int
    started: float

    @classmethod
    def of_this_process(cls, run_id: str) -> ProcessIdentity:
        me = psutil.Process()
        return cls(
            run_id,
            socket.gethostname(),
            psutil.boot_time(),
            _pid_namespace(),
            me.pid,
            me.create_time(),
        )

    def to_tags(self) -> dict[str, str]:
        """The run tag that records this process as the run's own (``domain/run_state``)."""
        fields = {name: value for name, value in asdict(self).items() if name != "run_id"}
        return own_state_tag(RUN_PROCESS_TAG, self.run_id, fields)

    @classmethod
    def of_run(cls, run: DagsterRun) -> ProcessIdentity | None:
        """The run's own record, or None (no record, a malformed one, or its parent's)."""
        state = own_state(run.tags, RUN_PROCESS_TAG, run.run_id)
        try:
            return cls(**state) if state is not None else None
        except TypeError:
            return None

    def on_this_machine(self) -> bool:
        return (self.hostname, self.boot_time, self.pid_namespace) == (
            socket.gethostname(),
            psutil.boot_time(),
            _pid_namespace(),
        )


def process_running(pid: int, started: float | None = None, started_by: float | None = None):
    """Whether ``pid`` is a live process that started at ``started`` (or no later than
    ``started_by``). A process we may not inspect counts as running."""
    try:
        process = psutil.Process(pid)
        created = process.create_time()
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True
    if started is not None:
        return abs(created - started) <= START_TIME_TOLERANCE_S
    if started_by is not None:
        return created <= started_by + START_TIME_TOLERANCE_S
    return True


@dataclass(frozen=True)
class Verdict:
    gone: bool
    reason: str
    checked: bool = True  # False: nothing could be checked from here (no record, elsewhere)


def judge(instance: DagsterInstance, run: DagsterRun) -> Verdict:
    """Whether ``run``'s processes are certainly all gone (see the module docstring)."""
    identity = ProcessIdentity.of_run(run)
    if identity is None:
        return Verdict(False, "no run process is recorded for it", checked=False)
    where = f"pid {identity.pid} on {identity.hostname}"
    if not identity.on_this_machine():
        return Verdict(
            False, f"its process ({where}) is on another machine or container", checked=False
        )
    if process_running(identity.pid, started=identity.started):
        return Verdict(False, f"its process ({where}) is running")
    steps = [
        entry.dagster_event.pid
        for entry in instance.all_logs(run.run_id, of_type=DagsterEventType.STEP_WORKER_STARTED)
        if entry.dagster_event is not None
        and entry.dagster_event.pid is not None
        and process_running(entry.dagster_event.pid, started_by=entry.timestamp)
    ]
    if steps:
        return Verdict(
            False, f"its process ({where}) is gone but its step processes {steps} still run"
        )
    return Verdict(True, f"its process ({where}) is gone and none of its step processes runs")
