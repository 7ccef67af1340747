"""The tests' one way to wait: on a condition (an event, a record, a count at a fake), never on
the clock. A deadline only bounds a wait that went wrong; it never proves anything."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    condition: Callable[[], T],
    what: str,
    timeout_s: float = 300,
    every_s: float = 0.25,
    alive: subprocess.Popen | None = None,
) -> T:
    """``condition``'s first truthy answer, asked every ``every_s``. Fails naming ``what`` after
    ``timeout_s``, or at once when the process ``alive`` ended first (with its last output)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if alive is not None and alive.poll() is not None:
            # A child that outlives the process may hold its output pipe open: read for a while
            # only, or the failure would hang instead of being told.
            try:
                output = alive.communicate(timeout=10)[0] or ""
            except subprocess.TimeoutExpired:
                output = "(its output is still held open by a process it started)"
            raise AssertionError(f"{what}: the process ended first\n{output[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s} s")
        time.sleep(every_s)


def sensor_ticks(instance, sensor_name: str) -> int:
    """How many ticks of the sensor the daemon has finished (its instigator's tick records)."""
    states = [s for s in instance.all_instigator_state() if s.instigator_name == sensor_name]
    return sum(
        len(
            [
                tick
                for tick in instance.get_ticks(state.instigator_origin_id, state.selector_id)
                if tick.status.value != "STARTED"
            ]
        )
        for state in states
    )


def sensor_started(deployment, sensor_name: str) -> bool:
    """Whether the daemon has ticked the sensor once (a run-status sensor sets its cursor on its
    first tick and sees only runs that stop after it)."""
    with deployment.instance() as instance:
        return any(
            state.instigator_name == sensor_name
            and state.instigator_data
            and state.instigator_data.cursor
            for state in instance.all_instigator_state()
        )
