"""Small, explicit app databases for tests: each test says which users it needs."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache

from sqlalchemy import Engine, create_engine
from sqlalchemy.pool import NullPool

from passport_pipeline import app_schema as t
from passport_pipeline.app_data import AppRows, write_app_rows

PLACES = [
    (1, "Gyeongbokgung Palace", "palace", "Seoul", "South Korea"),
    (2, "Gwangjang Market", "market", "Seoul", "South Korea"),
    (3, "Haeundae Beach", "beach", "Busan", "South Korea"),
    (4, "Seongsan Ilchulbong", "park", "Jeju", "South Korea"),
    (5, "Senso-ji", "temple", "Tokyo", "Japan"),
]


@dataclass
class UserRow:
    id: int
    title: str | None = "My travels"  # None: the user has no passport
    visits: list[tuple[int, datetime]] = field(default_factory=list)  # (place id, aware time)
    nickname: str | None = None


def october(day: int, hour: int = 3) -> datetime:
    """An instant well inside October 2026 on both the UTC and the Seoul calendar."""
    return datetime(2026, 10, day, hour, tzinfo=UTC)


def write_dataset(url: str, users: list[UserRow]) -> None:
    """The app's four tables at ``url``, dropped and filled with exactly these users."""
    created = datetime(2026, 1, 1)
    rows = AppRows()
    for place in PLACES:
        rows.add_place(*place)
    for user in users:
        rows.add_user(user.id, user.nickname or f"user{user.id}", created)
        if user.title is None:
            continue
        passport_id = rows.add_passport(1000 + user.id, user.id, user.title, created)
        for place_id, when in user.visits:
            rows.add_visit(passport_id, place_id, when)
    write_app_rows(url, rows)


def cover_urls(url: str) -> dict[int, str | None]:
    """user id → the cover URL on the user's passport."""
    with _reader(url).connect() as conn:
        rows = conn.execute(t.passports.select()).mappings().all()
    return {row["user_id"]: row["cover_image_url"] for row in rows}


@lru_cache(maxsize=64)
def _reader(url: str) -> Engine:
    """One engine a database (tests poll passports many times a second); it keeps no
    connection between reads, so the database can be dropped after the test."""
    return create_engine(url, poolclass=NullPool)
