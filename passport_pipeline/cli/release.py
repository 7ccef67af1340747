"""Fail a run whose process died and free its pool slots (what the dead-runs sensor does).

    python -m passport_pipeline.cli.release RUN_ID [--force]

Only when the run's processes are certainly gone from this machine; ``--force`` also when they
cannot be checked from here (another machine), never when they run here. A run that never
started (QUEUED with no daemon to dequeue it, or NOT_STARTED because the process that created it
died) is marked canceled, as the UI's Terminate does for a queued run: it holds its month until
it is cleared.
"""

from __future__ import annotations

import argparse
import sys

from dagster import DagsterInstance

from passport_pipeline.domain.month_runs import NOT_BEGUN
from passport_pipeline.execution.run_health import release
from passport_pipeline.execution.run_process import judge


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_id", help="the run whose process died")
    parser.add_argument(
        "--force",
        action="store_true",
        help="also when its process cannot be checked from here (never when it runs here)",
    )
    args = parser.parse_args(argv)
    with DagsterInstance.get() as instance:
        run = instance.get_run_by_id(args.run_id)
        if run is None or run.is_finished:
            instance.event_log_storage.free_concurrency_slots_for_run(args.run_id)
            print(f"freed the pool slots of run {args.run_id}")
            return 0
        if run.status.value in NOT_BEGUN:
            message = f"Run {run.run_id} never started ({run.status.value}); canceled by hand."
            instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
            instance.report_run_canceled(run, message=message)
            print(f"run {run.run_id} never started ({run.status.value}): marked canceled")
            return 0
        verdict = judge(instance, run)
        if not verdict.gone and (verdict.checked or not args.force):
            print(f"not releasing run {args.run_id}: {verdict.reason}", file=sys.stderr)
            return 1
        release(instance, run, verdict.reason if verdict.gone else "released by hand (--force)")
        print(f"run {args.run_id} marked failed; its pool slots are freed")
        return 0


if __name__ == "__main__":
    sys.exit(main())
