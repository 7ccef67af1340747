"""The month's summary, from the records of its user steps."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from passport_pipeline.domain.records import CoverRecord, CoverStatus

PREVIEW_COUNT = 6


@dataclass(frozen=True)
class MonthSummary:
    month: str
    total: int
    generated: int
    reused: int
    skipped: int
    failed: int  # planned users with no outcome at all
    skip_reasons: dict[str, int]
    # (user id, cover URL) of the first covers by user id, for the month's preview.
    preview: tuple[tuple[int, str], ...]
    estimated_cost_usd: float = 0.0
    refused: int = 0  # the model declined the user's prompt
    refusal_reasons: dict[str, int] = field(default_factory=dict)

    def as_metadata(self) -> dict[str, int | str]:
        return {
            "month": self.month,
            "total": self.total,
            "generated": self.generated,
            "reused": self.reused,
            "skipped": self.skipped,
            "failed": self.failed,
            "refused": self.refused,
            "estimated_cost_usd": self.estimated_cost_usd,
        }


def missing_users(planned_user_ids: list[int], records: list[CoverRecord]) -> list[int]:
    """Planned users with no record at all: neither covered, skipped nor failed."""
    recorded = {record.user_id for record in records}
    return sorted(set(planned_user_ids) - recorded)


def summarize_month(
    month: str, planned_user_ids: list[int], records: list[CoverRecord]
) -> MonthSummary:
    """Count outcomes; a planned user without a record is a failure."""
    by_user = {record.user_id: record for record in records}
    statuses = Counter(record.status for record in by_user.values())
    reasons = _reasons(by_user.values(), CoverStatus.SKIPPED)
    preview = tuple(
        (record.user_id, record.url)
        for record in sorted(by_user.values(), key=lambda r: r.user_id)
        if record.url and record.status is not CoverStatus.SKIPPED
    )[:PREVIEW_COUNT]
    return MonthSummary(
        month=month,
        total=len(planned_user_ids),
        generated=statuses[CoverStatus.GENERATED],
        reused=statuses[CoverStatus.REUSED],
        skipped=statuses[CoverStatus.SKIPPED],
        failed=sum(1 for user_id in planned_user_ids if user_id not in by_user),
        skip_reasons=reasons,
        preview=preview,
        estimated_cost_usd=round(sum(r.estimated_cost_usd for r in by_user.values()), 4),
        refused=statuses[CoverStatus.REFUSED],
        refusal_reasons=_reasons(by_user.values(), CoverStatus.REFUSED),
    )


def _reasons(records: Iterable[CoverRecord], status: CoverStatus) -> dict[str, int]:
    return dict(Counter(r.reason or "unknown" for r in records if r.status is status))


def preview_markdown(summary: MonthSummary, image_src: Callable[[str], str | None]) -> str:
    """The month's covers as a row of images, each under its user id.

    ``image_src`` turns a cover URL into one the operator's browser can load from the Dagster
    UI (the store decides: a public or presigned https URL, or a ``data:`` thumbnail), or None
    when it has none; such a cover is named by its URL instead."""
    if not summary.preview:
        return "_no covers this month_"
    heads, cells, unseen = [], [], []
    for user_id, url in summary.preview:
        src = image_src(url)
        if src is None:
            unseen.append(f"- user {user_id}: `{url}`")
            continue
        heads.append(f"user {user_id}")
        cells.append(f"![cover of user {user_id}]({src})")
    lines = [_covers_shown(summary, len(cells))]
    if cells:
        # A one-row table keeps the thumbnails side by side, each under its user.
        lines += ["", _row(heads), _row([":-:"] * len(cells)), _row(cells)]
    if unseen:
        lines += ["", "Not viewable here:", *unseen]
    return "\n".join(lines)


def _covers_shown(summary: MonthSummary, shown: int) -> str:
    stored = summary.generated + summary.reused
    return f"{shown} of the {stored} covers of {summary.month} (lowest user ids first)"


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def listed(user_ids: list[int], limit: int = 20) -> str:
    """Ids for a message: the first ``limit``, then how many more."""
    shown = ", ".join(str(user_id) for user_id in user_ids[:limit])
    return shown + (f" and {len(user_ids) - limit} more" if len(user_ids) > limit else "")
