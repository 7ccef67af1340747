import pytest

from passport_pipeline.domain.records import CoverRecord, CoverStatus
from passport_pipeline.domain.summary import missing_users, preview_markdown, summarize_month


def record(user_id: int, status: CoverStatus, url: str | None = None, reason: str | None = None):
    cost = 0.039 if status is CoverStatus.GENERATED else 0.0
    return CoverRecord(
        user_id,
        "2026-10",
        status,
        passport_id=user_id,
        url=url,
        reason=reason,
        estimated_cost_usd=cost,
    )


def test_counts_each_outcome_and_planned_users_without_a_record_as_failed():
    records = [
        record(1, CoverStatus.GENERATED, "s3://b/covers/1.png"),
        record(2, CoverStatus.REUSED, "s3://b/covers/2.png"),
        record(3, CoverStatus.SKIPPED, reason="user has no passport"),
        record(4, CoverStatus.SKIPPED, reason="no visits in 2026-10"),
    ]
    summary = summarize_month("2026-10", [1, 2, 3, 4, 5], records)
    assert summary.as_metadata() == {
        "month": "2026-10",
        "total": 5,
        "generated": 1,
        "reused": 1,
        "skipped": 2,
        "failed": 1,
        "estimated_cost_usd": 0.039,
    }
    assert summary.skip_reasons == {"user has no passport": 1, "no visits in 2026-10": 1}
    assert summary.preview_urls == ("s3://b/covers/1.png", "s3://b/covers/2.png")


def test_preview_shows_https_covers_as_images_and_others_as_links():
    records = [
        record(1, CoverStatus.GENERATED, "https://cdn.example/covers/1.png"),
        record(2, CoverStatus.GENERATED, "file:///tmp/covers/2.png"),
    ]
    markdown = preview_markdown(summarize_month("2026-10", [1, 2], records))
    assert "![cover](https://cdn.example/covers/1.png)" in markdown
    assert "- `file:///tmp/covers/2.png`" in markdown


def test_empty_month():
    summary = summarize_month("2026-10", [], [])
    assert (summary.total, summary.failed) == (0, 0)
    assert preview_markdown(summary) == "_no covers this month_"


@pytest.mark.parametrize(
    ("planned", "recorded", "missing"),
    [
        ([1, 2, 3], [1, 2, 3], []),
        ([5, 1, 3, 2], [2], [1, 3, 5]),
        ([], [], []),
        ([1], [1, 1], []),
    ],
)
def test_missing_users_are_the_planned_ones_without_any_record(planned, recorded, missing):
    records = [record(user_id, CoverStatus.SKIPPED) for user_id in recorded]
    assert missing_users(planned, records) == missing
