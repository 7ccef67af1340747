"""Slots handed out when 12 processes claim a pool of 3 at once: stock dagster-postgres vs ours.

    .venv/bin/python -m bench.pool_claims [trials]

Needs the PostgreSQL server on 127.0.0.1:5432 (a fresh database is made and dropped).
"""

from __future__ import annotations

import sys

from passport_pipeline_tests.support.claimers import Storage, claim_race
from passport_pipeline_tests.support.postgres import database_url, fresh_postgres_database

CLASSES = {
    "stock": ("dagster_postgres.event_log", "PostgresEventLogStorage"),
    "ours": ("passport_pipeline.execution.instance_storage", "AtomicClaimPostgresEventLogStorage"),
}


def main(trials: int) -> None:
    for label, (module, cls) in CLASSES.items():
        with fresh_postgres_database("passport_bench_claims") as (name, _):
            url = database_url(name)
            claimed = claim_race(Storage(module, cls, url), claimers=12, trials=trials, limit=3)
        over = sum(count > 3 for count in claimed)
        print(f"{label:5}: claimed per trial {claimed}; above the limit in {over} of {trials}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
