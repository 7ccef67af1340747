"""Whether a user needs a paid image: the one decision the user's step and the Gemini batch ask."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from passport_pipeline.covers.cover_need import Need, cover_need
from passport_pipeline.domain.months import Month
from passport_pipeline.domain.records import GeneratedImage
from passport_pipeline_tests.support.dataset import UserRow, october, write_dataset
from passport_pipeline_tests.support.launch import local_resources_for

OCTOBER = Month(2026, 10)
DELETED_PLACE = 99  # a visit whose place the app has deleted (sqlite keeps the dangling row)


@pytest.fixture
def resources(sqlite_url, tmp_path) -> dict:
    write_dataset(
        sqlite_url,
        [
            UserRow(1, visits=[(1, october(3))]),
            UserRow(2, title=None),
            UserRow(3, visits=[(1, october(1).replace(month=9))]),
            UserRow(4, visits=[(DELETED_PLACE, october(3)), (DELETED_PLACE, october(9))]),
        ],
    )
    return local_resources_for(sqlite_url, tmp_path / "store")


def need_of(resources: dict, user_id: int, force: bool = False):
    names = ("app_db", "image_store", "cover_keys", "pending_covers")
    return cover_need(user_id, OCTOBER, force, *(resources[name] for name in names))


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (300, 400)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("user_id", "reason"),
    [
        (2, "user has no passport"),
        (3, "no visits in 2026-10"),
        (4, "visits in 2026-10 only to deleted places"),
    ],
)
def test_users_with_nothing_to_draw_are_skipped_each_with_its_reason(resources, user_id, reason):
    need = need_of(resources, user_id)
    assert (need.need, need.reason) == (Need.SKIP, reason)


def test_a_stored_cover_is_reused_unless_forced_and_a_kept_one_is_uploaded(resources):
    assert need_of(resources, 1).need is Need.PAY
    stem = resources["cover_keys"].stem(1, OCTOBER)
    resources["pending_covers"].keep(stem, GeneratedImage(png(), "image/png", "local"))
    assert need_of(resources, 1).need is Need.UPLOAD_KEPT
    resources["image_store"].put(f"{stem}.png", png(), "image/png")
    assert need_of(resources, 1).need is Need.REUSE
    # Forced: the stored cover is drawn again, from the image already paid for if there is one.
    assert need_of(resources, 1, force=True).need is Need.UPLOAD_KEPT
