"""The month's summary, from the records of its user steps."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from passport_pipeline.domain.records import CoverRecord, CoverStatus

PREVIEW_COUNT = 6


@dataclass(frozen=True)
class MonthSummary:
    month: str
    total: int
    generated: int
    reused: int
    skipped: int
    failed: int
    skip_reasons: dict[str, int]
    preview_urls: tuple[str, ...]
    estimated_cost_usd: float = 0.0

    def as_metadata(self) -> dict[str, int | str]:
        return {
            "month": self.month,
            "total": self.total,
            "generated": self.generated,
            "reused": self.reused,
            "skipped": self.skipped,
            "failed": self.failed,
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
    reasons = Counter(
        record.reason or "unknown"
        for record in by_user.values()
        if record.status is CoverStatus.SKIPPED
    )
    preview = tuple(
        record.url
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
        skip_reasons=dict(reasons),
        preview_urls=preview,
        estimated_cost_usd=round(sum(r.estimated_cost_usd for r in by_user.values()), 4),
    )


def preview_markdown(summary: MonthSummary) -> str:
    if not summary.preview_urls:
        return "_no covers this month_"
    lines = []
    for url in summary.preview_urls:
        # The UI can show images it can fetch over HTTP(S); other URLs are listed as links.
        lines.append(f"![cover]({url})" if url.startswith("https://") else f"- `{url}`")
    return "\n".join(lines)
