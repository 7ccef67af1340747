"""Every event this code writes on the ``passport_covers`` asset itself, built in one place.

Dagster writes the month's materialization (``record_month``'s output) and its failure status.
Observations add what Dagster cannot know: the month's planned total (``month_users``),
a user's unusable model answer (the run's breaker, ``breaker.py``), a stopped run's counts (the
stopped-month sensors, ``stopped.py``), a run of listed users' summary (``record.py``: it
does not mark the month done), the month's Gemini batches (the batch ledger,
``batch_ledger.py``), and a run halted by the daily quota and its automatic resumes
(``quota_resume.py``).
"""

from __future__ import annotations

from dagster import AssetObservation, MetadataValue

from passport_pipeline.covers.names import COVERS_ASSET
from passport_pipeline.domain.progress import Progress

UNUSABLE_KEY = "unusable_answer"
PARTIAL_RUN_STATUS = "listed users only"
QUOTA_HALT_KEY = "quota_halted_run_id"
QUOTA_RESUME_KEY = "quota_resumed_run_id"


def planned(
    month: str, total: int, unknown_user_ids: list[int], listed_only: bool = False
) -> AssetObservation:
    """The run's users to cover (the UI's progress and the CLI read ``total``): the month's, or
    only the listed ones (``listed_only``: not the month's total)."""
    return AssetObservation(
        asset_key=COVERS_ASSET,
        partition=month,
        metadata={
            "total": total,
            "listed_only": listed_only,
            "unknown_user_ids": MetadataValue.json(unknown_user_ids[:100]),
            "unknown_user_count": len(unknown_user_ids),
        },
    )


def unusable_answer(month: str, user_id: int, reason: str) -> AssetObservation:
    """One user's step ended on an answer that is no usable image."""
    return AssetObservation(
        asset_key=COVERS_ASSET, partition=month, metadata={"user_id": user_id, UNUSABLE_KEY: reason}
    )


def stopped_run(
    month: str,
    run_id: str,
    label: str,
    counts: dict,
    books: Progress | None = None,
    ui_url: str | None = None,
) -> AssetObservation:
    """A failed or canceled run's counts, the month's over all its runs (``month_*``: covered,
    failed, never started or canceled, remaining, spend), and where to re-execute it."""
    metadata = {**counts, "run_id": run_id, "run_status": label}
    if books is not None:
        metadata.update(month_books(books))
    command = f"python -m passport_pipeline.cli.reexecute {run_id}"
    metadata["reexecute"] = (
        MetadataValue.url(f"{ui_url.rstrip('/')}/runs/{run_id}") if ui_url else command
    )
    return AssetObservation(asset_key=COVERS_ASSET, partition=month, metadata=metadata)


def month_books(books: Progress) -> dict:
    """The month's true counts over every run of it, as metadata entries."""
    return {
        "month_total": books.total if books.total is not None else "unknown",
        "month_covered": books.completed,
        "month_failed": books.failed,
        "month_stopped": books.stopped,
        "month_remaining": books.remaining if books.remaining is not None else "unknown",
        "month_spend_usd": books.estimated_cost_usd,
    }


def partial_run(month: str, run_id: str, summary: dict) -> AssetObservation:
    """A run of listed users only: its summary, on the month, which it does not mark done."""
    return AssetObservation(
        asset_key=COVERS_ASSET,
        partition=month,
        metadata={**summary, "run_id": run_id, "run_status": PARTIAL_RUN_STATUS},
    )


def batch_ledger(month: str, metadata: dict) -> AssetObservation:
    """A Gemini batch of the month: created (with its users), polled, or taken by its results
    run (``batch_ledger.py`` writes and folds these entries)."""
    return AssetObservation(asset_key=COVERS_ASSET, partition=month, metadata=metadata)


def quota_halt(month: str, run_id: str, halted_at: float, resume_at: float) -> AssetObservation:
    """A run halted by Gemini's daily quota, and when its month may go on (epoch seconds)."""
    return AssetObservation(
        asset_key=COVERS_ASSET,
        partition=month,
        metadata={QUOTA_HALT_KEY: run_id, "halted_at": halted_at, "resume_at": resume_at},
    )


def quota_resume(
    month: str, run_id: str, number: int, most: int, resumed_at: float
) -> AssetObservation:
    """The quota-resume sensor re-executes a halted run from failure (at ``resumed_at``): the
    month's ``number``-th automatic resume of at most ``most``."""
    return AssetObservation(
        asset_key=COVERS_ASSET,
        partition=month,
        metadata={
            QUOTA_RESUME_KEY: run_id,
            "resume_number": number,
            "resume_most": most,
            "resumed_at": resumed_at,
        },
    )
