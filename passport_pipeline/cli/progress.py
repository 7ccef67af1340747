"""Progress of a month's covers, from the shell.

    python -m passport_pipeline.cli.progress --partition 2026-10 [--covers] [--json]
    python -m passport_pipeline.cli.progress --run RUN_ID [--watch]

Counts cover the run and all of its re-executions (its run group): total, completed, failed,
skipped, in flight, remaining, percent and elapsed — surviving restarts, read from Dagster's
event log — and how many cover steps ran at once (max and time-weighted mean).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from dagster import DagsterInstance

from passport_pipeline.covers.progress import latest_run_id, report_for
from passport_pipeline.domain.month_runs import is_finished
from passport_pipeline.domain.months import InvalidMonthError, Month

WATCH_INTERVAL_S = 2.0


def watch(instance: DagsterInstance, run_id: str) -> dict:
    """A live progress bar until the run (and its re-executions so far) has finished."""
    from tqdm import tqdm

    with tqdm(unit="user", dynamic_ncols=True) as bar:
        while True:
            report = report_for(instance, run_id, None, covers=False)
            done = report["completed"] + report["failed"] + report["skipped"]
            bar.total = report["total"]
            bar.n = done
            bar.set_postfix(
                failed=report["failed"],
                in_flight=report["in_flight"],
                cost=f"${report['estimated_cost_usd']:.2f}",
                status=report["status"],
                refresh=False,
            )
            bar.refresh()
            if is_finished(report["status"]):
                return report
            time.sleep(WATCH_INTERVAL_S)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--partition", help="a month, YYYY-MM: its latest run")
    target.add_argument("--run", help="a run id")
    parser.add_argument("--covers", action="store_true", help="also show the month's summary")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--watch", action="store_true", help="a live progress bar until done")
    args = parser.parse_args(argv)

    instance = DagsterInstance.get()
    month = None
    run_id = args.run
    if args.partition:
        try:
            month = Month.parse(args.partition)
        except InvalidMonthError as error:
            parser.error(str(error))
        run_id = latest_run_id(instance, month)
        if run_id is None:
            print(f"no run of the covers for {month} yet", file=sys.stderr)
            return 1
    try:
        if args.watch:
            watch(instance, run_id)
        report = report_for(instance, run_id, month, args.covers)
    except LookupError as error:
        print(error, file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        for key, value in report.items():
            if key == "summary" and value:
                print("month summary (asset passport_covers):")
                for name, item in value.items():
                    if name == "preview":  # markdown with images: its heading says enough here
                        item = str(item).splitlines()[0] + " (shown as images in the Dagster UI)"
                    print(f"  {name}: {item}")
            else:
                print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
