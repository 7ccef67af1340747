"""What the run process does for the covers around its steps, handed in from above.

The executors (``execution/``) sit below the covers (``covers/``) and must not import them; the
covers' decisions reach the run process as these three callables, which ``definitions.py`` wires
to ``covers.one_run``, ``covers.progress`` and ``covers.unstarted_steps``. Each takes the
instance and the run's id.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from dagster import DagsterInstance


def _nothing(instance: DagsterInstance, run_id: str) -> None:
    return None


@dataclass(frozen=True)
class RunHooks:
    # Before any step: go ahead, or raise to stop the run (one run of a month at a time).
    before_steps: Callable[[DagsterInstance, str], None] = _nothing
    # The run's progress as one line, published on the run (None: nothing to publish).
    progress: Callable[[DagsterInstance, str], str | None] = _nothing
    # After a stop (Ctrl-C, Terminate, the executor failing): record what never started.
    after_stop: Callable[[DagsterInstance, str], object] = _nothing


NO_HOOKS = RunHooks()
