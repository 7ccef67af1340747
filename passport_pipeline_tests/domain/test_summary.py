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
        record(6, CoverStatus.REFUSED, reason="IMAGE_SAFETY"),
        record(7, CoverStatus.REFUSED, reason="IMAGE_SAFETY"),
    ]
    summary = summarize_month("2026-10", [1, 2, 3, 4, 5, 6, 7], records)
    assert summary.as_metadata() == {
        "month": "2026-10",
        "total": 7,
        "generated": 1,
        "reused": 1,
        "skipped": 2,
        "failed": 1,
        "refused": 2,
        "estimated_cost_usd": 0.039,
    }
    assert summary.skip_reasons == {"user has no passport": 1, "no visits in 2026-10": 1}
    assert summary.refusal_reasons == {"IMAGE_SAFETY": 2}
    assert summary.preview == ((1, "s3://b/covers/1.png"), (2, "s3://b/covers/2.png"))


def test_preview_is_the_first_six_stored_covers_by_user_id():
    stored = {9: CoverStatus.GENERATED, 3: CoverStatus.GENERATED, 8: CoverStatus.REUSED}
    stored |= {1: CoverStatus.REUSED, 5: CoverStatus.GENERATED, 7: CoverStatus.GENERATED}
    records = [
        record(user_id, status, f"s3://b/{user_id}.png") for user_id, status in stored.items()
    ]
    records.append(record(2, CoverStatus.SKIPPED, reason="user has no passport"))
    summary = summarize_month("2026-10", list(range(1, 10)), records)
    assert [user_id for user_id, _ in summary.preview] == [1, 3, 5, 7, 8, 9]


def test_preview_shows_each_cover_as_an_image_under_its_user():
    records = [
        record(1, CoverStatus.GENERATED, "s3://b/covers/1.png"),
        record(2, CoverStatus.REUSED, "s3://b/covers/2.png"),
    ]
    sources = {"s3://b/covers/1.png": "https://signed/1", "s3://b/covers/2.png": "data:image/x"}
    markdown = preview_markdown(summarize_month("2026-10", [1, 2], records), sources.get)
    assert markdown.splitlines() == [
        "2 of the 2 covers of 2026-10 (lowest user ids first)",
        "",
        "| user 1 | user 2 |",
        "| :-: | :-: |",
        "| ![cover of user 1](https://signed/1) | ![cover of user 2](data:image/x) |",
    ]


def test_a_cover_the_store_cannot_show_is_named_by_its_url():
    records = [
        record(1, CoverStatus.GENERATED, "file:///gone/1.png"),
        record(2, CoverStatus.GENERATED, "file:///covers/2.png"),
    ]
    sources = {"file:///covers/2.png": "data:image/jpeg;base64,AA"}
    markdown = preview_markdown(summarize_month("2026-10", [1, 2], records), sources.get)
    assert "| ![cover of user 2](data:image/jpeg;base64,AA) |" in markdown
    assert "cover of user 1" not in markdown
    assert markdown.endswith("Not viewable here:\n- user 1: `file:///gone/1.png`")
    assert markdown.startswith("1 of the 2 covers of 2026-10")


def test_empty_month():
    summary = summarize_month("2026-10", [], [])
    assert (summary.total, summary.failed) == (0, 0)
    assert preview_markdown(summary, lambda url: url) == "_no covers this month_"


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
