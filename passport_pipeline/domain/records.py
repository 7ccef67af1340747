"""The small values that travel between the job's steps (never image bytes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from passport_pipeline.domain.batch_protocol import BatchSlot
from passport_pipeline.domain.images import ImageInfo
from passport_pipeline.domain.months import Month


@dataclass(frozen=True)
class Passport:
    id: int
    user_id: int
    nickname: str
    title: str
    cover_image_url: str | None


@dataclass(frozen=True)
class Visit:
    place_name: str
    category: str
    city: str
    country: str
    visited_at: datetime


@dataclass(frozen=True)
class UserTask:
    """One user's work for one month, as fanned out by the first step."""

    user_id: int
    month: str
    force: bool = False
    # Set by the results run of a month's Gemini batch: the user's answer (or its absence).
    batch: BatchSlot | None = None

    @property
    def mapping_key(self) -> str:
        return f"user_{self.user_id}"


@dataclass(frozen=True)
class CoverRequest:
    """What an image model is asked for: the prompt, and the facts it was built from."""

    prompt: str
    month: Month
    nickname: str
    title: str
    visits: tuple[Visit, ...]


@dataclass(frozen=True)
class GeneratedImage:
    data: bytes
    mime_type: str
    model: str
    # Facts for the step's metadata (tokens, attempts, latency, cost, fallback, ...).
    metadata: dict[str, str | int | float | bool] = field(default_factory=dict)
    # Set by a model that already decoded and checked the bytes, so they are checked once.
    info: ImageInfo | None = None


class CoverStatus(StrEnum):
    GENERATED = "generated"
    REUSED = "reused"
    SKIPPED = "skipped"
    REFUSED = "refused"  # the model declined the user's prompt: a named failure, not retried


@dataclass(frozen=True)
class CoverRecord:
    """The outcome of one user's step."""

    user_id: int
    month: str
    status: CoverStatus
    passport_id: int | None = None
    key: str | None = None
    url: str | None = None
    reason: str | None = None
    estimated_cost_usd: float = 0.0
    path: str | None = None  # which path made a generated cover: direct | batch
