"""Every event this code writes on the ``passport_covers`` asset itself, built in one place.

Dagster writes the month's materialization (``record_month``'s output) and its failure status.
Four observations add what Dagster cannot know: the month's planned total (``month_users``),
a user's unusable model answer (the run's breaker, ``breaker.py``), a stopped run's counts (the
stopped-month sensors, ``stopped.py``) and the month's Gemini batches (the batch ledger,
``batch_ledger.py``).
"""

from __future__ import annotations

from dagster import AssetObservation, MetadataValue

from passport_pipeline.covers.names import COVERS_ASSET

UNUSABLE_KEY = "unusable_answer"


def planned(month: str, total: int, unknown_user_ids: list[int]) -> AssetObservation:
    """The month's users to cover (the UI's progress and the CLI read ``total``)."""
    return AssetObservation(
        asset_key=COVERS_ASSET,
        partition=month,
        metadata={"total": total, "unknown_user_ids": MetadataValue.json(unknown_user_ids)},
    )


def unusable_answer(month: str, user_id: int, reason: str) -> AssetObservation:
    """One user's step ended on an answer that is no usable image."""
    return AssetObservation(
        asset_key=COVERS_ASSET, partition=month, metadata={"user_id": user_id, UNUSABLE_KEY: reason}
    )


def stopped_run(month: str, run_id: str, label: str, counts: dict) -> AssetObservation:
    """A failed or canceled run's counts, shown next to the month's last full summary."""
    return AssetObservation(
        asset_key=COVERS_ASSET,
        partition=month,
        metadata={**counts, "run_id": run_id, "run_status": label},
    )


def batch_ledger(month: str, metadata: dict) -> AssetObservation:
    """A Gemini batch of the month: created (with its users), polled, or taken by its results
    run (``batch_ledger.py`` writes and folds these entries)."""
    return AssetObservation(asset_key=COVERS_ASSET, partition=month, metadata=metadata)
