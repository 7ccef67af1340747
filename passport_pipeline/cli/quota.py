"""Read and change the deployment's pace with the image model, live (no deploy, no restart).

    python -m passport_pipeline.cli.quota            # the pace, the last minute, each run's width
    python -m passport_pipeline.cli.quota set 60     # at most 60 paid requests a minute
    python -m passport_pipeline.cli.quota set none   # no limit (Google's 429s still slow it)
    python -m passport_pipeline.cli.quota clear      # back to GEMINI_MAX_REQUESTS_PER_MINUTE

As ``dagster instance concurrency set gemini N`` changes the pool, this changes the rate: it is
kept in the instance's database and read before every paid attempt of every run.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from dagster import DagsterInstance

from passport_pipeline.resources.pacing import PacingStore, instance_database_url
from passport_pipeline.settings import SettingsError, load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", nargs="?", choices=["show", "set", "clear"], default="show")
    parser.add_argument("limit", nargs="?", help="with set: requests a minute, or none")
    parser.add_argument("--json", action="store_true", help="show as JSON")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        env_limit = settings.gemini_max_requests_per_minute
        limit = _limit(args.limit) if args.action == "set" else None
    except (SettingsError, ValueError) as error:
        print(f"passport quota: {error}", file=sys.stderr)
        return 2
    with DagsterInstance.get() as instance:
        store = PacingStore(instance_database_url(instance), start_rate=settings.gemini_start_rate)
        try:
            if args.action == "set":
                print(f"limit set: {store.set_limit(limit).describe()}")
            elif args.action == "clear":
                print(f"limit from the environment: {store.clear_limit(env_limit).describe()}")
            report = store.report(env_limit)
        finally:
            store.dispose()
    if args.json:
        print(json.dumps({**asdict(report), "pace": asdict(report.pace)}, indent=2))
    elif args.action == "show":
        print(f"pace: {report.pace.describe()}")
        print(f"started in the last minute: {report.started_last_minute}")
        print(f"in flight: {report.in_flight}")
        for scope, width in sorted(report.widths.items()):
            print(f"width of run {scope}: {width}")
    return 0


def _limit(text: str | None) -> float | None:
    if text is None:
        raise ValueError("set needs a number of requests a minute, or none")
    if text.strip().lower() == "none":
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number of requests a minute (or none)") from None
    if value <= 0:
        raise ValueError(f"the limit must be a positive number of requests a minute, not {text}")
    return value


if __name__ == "__main__":
    sys.exit(main())
