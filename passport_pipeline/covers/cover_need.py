"""Does this user need a paid image for this month? One decision, asked by the user's step
(``cover_step``) and by the month's Gemini batch (``batch``) before either pays for anything.

In order: a user with no passport, or no visit in the month (or only visits to places the app
has since deleted), is skipped with a reason the month's summary counts; a cover already stored
for the user and month is reused (unless the run forces regeneration); an image paid for whose
upload failed, kept on this machine, is uploaded; only then is a new image paid for.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from passport_pipeline.domain.months import Month
from passport_pipeline.domain.records import GeneratedImage, Passport, Visit
from passport_pipeline.resources.app_db import AppDatabase
from passport_pipeline.resources.cover_keys import CoverKeys
from passport_pipeline.resources.image_store import ImageStore, StoredObject
from passport_pipeline.resources.pending_covers import PendingCovers


class Need(StrEnum):
    SKIP = "skip"  # nothing to draw: ``reason`` says why
    REUSE = "reuse"  # the month's cover is stored: ``stored``
    UPLOAD_KEPT = "upload_kept"  # paid for, not yet stored: ``kept``
    PAY = "pay"  # a new image from the model


@dataclass(frozen=True)
class CoverNeed:
    need: Need
    stem: str | None = None
    passport: Passport | None = None
    visits: tuple[Visit, ...] = ()
    reason: str | None = None
    stored: StoredObject | None = None
    kept: GeneratedImage | None = None


def cover_need(
    user_id: int,
    month: Month,
    force: bool,
    app_db: AppDatabase,
    image_store: ImageStore,
    cover_keys: CoverKeys,
    pending_covers: PendingCovers,
) -> CoverNeed:
    """What it takes to give ``user_id`` a cover for ``month`` (see the module docstring)."""
    passport = app_db.latest_passport(user_id)
    if passport is None:
        return CoverNeed(Need.SKIP, reason="user has no passport")
    visits = tuple(app_db.month_visits(user_id, month))
    if not visits:
        return CoverNeed(Need.SKIP, passport=passport, reason=_no_visits(app_db, user_id, month))
    stem = cover_keys.stem(user_id, month)
    found = dict(stem=stem, passport=passport, visits=visits)
    if not force and (stored := image_store.find(stem)) is not None:
        return CoverNeed(Need.REUSE, stored=stored, **found)
    if (kept := pending_covers.find(stem)) is not None:
        return CoverNeed(Need.UPLOAD_KEPT, kept=kept, **found)
    return CoverNeed(Need.PAY, **found)


def _no_visits(app_db: AppDatabase, user_id: int, month: Month) -> str:
    # Planned from the visits table alone: the user's visits may name places deleted since.
    # One reason for all such users, so the month's summary counts them together.
    if app_db.month_visits_without_place(user_id, month):
        return f"visits in {month} only to deleted places"
    return f"no visits in {month}"
