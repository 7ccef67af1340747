"""A tick in a thread of the run process while a block runs: the run's watches and progress."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def periodically(plan_context, interval_s: float, name: str, tick) -> Iterator[None]:
    """Call ``tick`` every ``interval_s`` in a thread of the run process while the block runs.

    What runs here is for people (warnings, progress): an error in it, a storage blip say, is
    logged at DEBUG and never ends the run."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval_s):
            try:
                tick()
            except Exception as error:
                plan_context.log.debug(f"{name}: {error!r}")

    thread = threading.Thread(target=loop, name=name, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=interval_s)
