"""The asset's last step: check the month's books and record its summary (the materialization)."""

from collections import Counter

from dagster import Failure, MetadataValue, OpExecutionContext, Out, Output, op

from passport_pipeline.covers import events
from passport_pipeline.covers.plan import MonthPlan
from passport_pipeline.covers.progress import month_progress
from passport_pipeline.domain.months import Month
from passport_pipeline.domain.records import CoverRecord, CoverStatus
from passport_pipeline.domain.summary import (
    listed,
    missing_users,
    preview_markdown,
    summarize_month,
)
from passport_pipeline.resources.app_db import AppDatabase
from passport_pipeline.resources.image_store import ImageStore


# No output (no materialization) for a run of listed users: the month is not done by it.
@op(out=Out(is_required=False))
def record_month(
    context: OpExecutionContext,
    plan: MonthPlan,
    records: list[CoverRecord],
    app_db: AppDatabase,
    image_store: ImageStore,
):
    """Check the month's books: every planned user has a record, every stored cover exists
    and is linked to its passport (unless a later month's cover is already there); then record
    the month's summary on the `passport_covers` asset: as its materialization when the run
    planned the whole month, as an observation when it ran listed users only."""
    missing = missing_users(plan.user_ids, records)
    if missing:
        # Never report a month done with users neither covered nor failed.
        raise Failure(
            f"{len(missing)} of {len(plan.user_ids)} planned users of {plan.month} have neither "
            f"a cover nor a failure in this run: users {listed(missing)}. Launch the month "
            f"{plan.month} again (Launchpad, or dagster job execute with the partition "
            f"{plan.month}): it covers them, and reuses every stored cover without paying twice.",
            metadata={"missing_user_ids": MetadataValue.json(missing)},
            allow_retries=False,
        )
    relinked = 0
    for record in records:
        if record.url and record.passport_id is not None:
            if not image_store.exists_at(record.url):
                raise Failure(
                    f"user {record.user_id}: cover {record.key} is missing from the store"
                )
            relinked += app_db.link_cover(record.passport_id, record.url, Month.parse(record.month))
    summary = summarize_month(plan.month, plan.user_ids, records)
    metadata = {
        **summary.as_metadata(),
        "relinked": relinked,
        "unknown_user_ids": MetadataValue.json(plan.unknown_user_ids[:100]),
        "unknown_user_count": len(plan.unknown_user_ids),
        "skip_reasons": MetadataValue.json(summary.skip_reasons),
        "refusal_reasons": MetadataValue.json(summary.refusal_reasons),
        # Which path made the month's new covers (direct calls, or a Gemini batch at half price).
        "cover_paths": MetadataValue.json(
            dict(Counter(r.path for r in records if r.status is CoverStatus.GENERATED))
        ),
        "preview": MetadataValue.md(preview_markdown(summary, image_store.preview_src)),
        # The month over all its runs: what every run of it paid, not this run's share alone.
        **events.month_books(month_progress(context.instance, plan.month)),
    }
    if plan.partial:
        # A few users of the month: what the run did, without marking the month done.
        context.log_event(events.partial_run(plan.month, context.run_id, metadata))
        context.log.info(
            f"{plan.month}: {len(plan.user_ids)} listed users recorded as an observation; the "
            "month is materialized only by a run of all its users"
        )
        return
    # The asset's materialization for the month: the catalog shows this summary.
    yield Output(summary.as_metadata(), metadata=metadata)
