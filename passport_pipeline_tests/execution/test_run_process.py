"""The run-process record and the liveness judgment, on real processes of this machine."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import psutil
from dagster import DagsterRun

from passport_pipeline.execution.run_process import (
    RUN_PROCESS_TAG,
    ProcessIdentity,
    process_running,
)
from passport_pipeline_tests.support.waiting import wait_for


def run_tagged(run_id: str, identity: ProcessIdentity | None) -> DagsterRun:
    tags = identity.to_tags() if identity else {}
    return DagsterRun(job_name="monthly_passport_covers", run_id=run_id, tags=tags)


def test_a_run_reads_back_its_own_record_only():
    me = ProcessIdentity.of_this_process("run-a")
    assert ProcessIdentity.of_run(run_tagged("run-a", me)) == me
    assert me.on_this_machine()
    # A re-execution copies its parent's tags: that record is not the child's process.
    assert ProcessIdentity.of_run(run_tagged("run-b", me)) is None
    assert ProcessIdentity.of_run(run_tagged("run-a", None)) is None
    broken = DagsterRun(job_name="j", run_id="run-a", tags={RUN_PROCESS_TAG: "{not json"})
    assert ProcessIdentity.of_run(broken) is None


def test_a_record_from_another_machine_is_not_this_machine():
    me = ProcessIdentity.of_this_process("run-a")
    elsewhere = replace(me, hostname=me.hostname + "-other")
    rebooted = replace(me, boot_time=me.boot_time - 3600)
    assert not elsewhere.on_this_machine()
    assert not rebooted.on_this_machine()


def test_a_live_process_is_running_and_an_ended_one_is_not():
    me = psutil.Process()
    assert process_running(me.pid, started=me.create_time())
    assert process_running(me.pid, started_by=me.create_time())
    # The same PID with another start time is another process (the PID was reused).
    assert not process_running(me.pid, started=me.create_time() - 60)
    assert not process_running(me.pid, started_by=me.create_time() - 60)

    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    assert not process_running(ended.pid)


def test_an_unreaped_zombie_is_not_running():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        # Not reaped yet: the kernel keeps the ended process as a zombie until wait().
        wait_for(
            lambda: psutil.Process(child.pid).status() == psutil.STATUS_ZOMBIE,
            "the child to end",
            30,
            0.05,
        )
        assert not process_running(child.pid)
    finally:
        child.wait()
