"""A stop the thread executor asks of its running steps, honoured where paid work would start.

A step thread cannot be interrupted safely. An exception raised into it from outside
(``PyThreadState_SetAsyncExc``) lands at whatever instruction the thread runs next, including
between a logging handler's ``acquire`` and its ``try``: the lock is never released and the run
process hangs on its next log line. A Ctrl-C of a run on threads once hung exactly so.

So the thread executor only sets an event, which each step thread carries in a context variable,
and the code that would start paid work asks first: the model's client before each attempt and
during a retry's wait. A call already in flight finishes and its cover is stored, bounded by the
per-attempt deadline; no new paid call starts. Code outside a thread executor's step (a step
process, a sensor, a test) sees no stop here: Dagster interrupts those itself.
"""

from __future__ import annotations

import threading
import time
from contextvars import ContextVar

from dagster import DagsterExecutionInterruptedError

_STOP: ContextVar[threading.Event | None] = ContextVar("passport_step_stop", default=None)


def carry(stop: threading.Event) -> None:
    """Make ``stop`` the stop this thread's step answers to (called first in a step thread)."""
    _STOP.set(stop)


def stop_requested() -> bool:
    stop = _STOP.get()
    return stop is not None and stop.is_set()


def raise_if_stopped() -> None:
    """End the step as interrupted if its run was asked to stop."""
    if stop_requested():
        raise DagsterExecutionInterruptedError(
            "the run was stopped before this step's next call to the image model"
        )


def sleep(seconds: float) -> None:
    """``time.sleep`` that a stop cuts short (a retry's wait can be minutes)."""
    stop = _STOP.get()
    if stop is None:
        time.sleep(seconds)
    else:
        stop.wait(seconds)
