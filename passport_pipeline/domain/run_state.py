"""State a run keeps in its own tags, which a re-execution must not inherit (pure).

Dagster copies a run's tags to its re-executions (the UI's "Re-execute", ``cli.reexecute``), so
a tag that says "this run was halted", "this run's alert was sent" or "this run's process is
pid 42" would be read by the re-execution as its own. Every such tag is written and read here:
the value is a JSON object that names the run it belongs to, and a run reads only its own.
Used by the halt (covers/cover_step.py, covers/alerts.py), the alert ledger (covers/alerts.py)
and the run-process record (execution/run_process.py).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

RUN_ID_FIELD = "run_id"


def own_state_tag(key: str, run_id: str, state: Mapping) -> dict[str, str]:
    """The tag (``{key: value}``) that records ``state`` as ``run_id``'s own."""
    return {key: json.dumps({**state, RUN_ID_FIELD: run_id}, sort_keys=True)}


def own_state(tags: Mapping[str, str], key: str, run_id: str) -> dict | None:
    """The state under ``key`` if it is ``run_id``'s own; None if absent, malformed, or written
    by another run (the parent whose tags a re-execution copied)."""
    try:
        state = json.loads(tags[key])
    except (KeyError, TypeError, ValueError):
        return None
    if not isinstance(state, dict) or state.get(RUN_ID_FIELD) != run_id:
        return None
    return state
