"""Small, explicit app databases for tests: each test says which users it needs."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import create_engine, insert

from passport_pipeline import app_schema as t

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
    engine = create_engine(url)
    sqlite = engine.dialect.name == "sqlite"
    created = datetime(2026, 1, 1)
    t.metadata.drop_all(engine)
    t.metadata.create_all(engine)
    user_rows, passport_rows, visit_rows = [], [], []
    for user in users:
        user_rows.append(
            {"id": user.id, "nickname": user.nickname or f"user{user.id}", "created_at": created}
        )
        if user.title is None:
            continue
        passport_id = 1000 + user.id
        passport_rows.append(
            {
                "id": passport_id,
                "user_id": user.id,
                "title": user.title,
                "cover_image_url": None,
                "created_at": created,
                "updated_at": created,
            }
        )
        for place_id, when in user.visits:
            stored = when.astimezone(UTC).replace(tzinfo=None) if sqlite else when
            visit_rows.append(
                {
                    "id": len(visit_rows) + 1,
                    "passport_id": passport_id,
                    "place_id": place_id,
                    "visited_at": stored,
                }
            )
    with engine.begin() as conn:
        conn.execute(
            insert(t.places),
            [
                dict(zip(("id", "name", "category", "city", "country"), p, strict=True))
                for p in PLACES
            ],
        )
        conn.execute(insert(t.users), user_rows)
        if passport_rows:
            conn.execute(insert(t.passports), passport_rows)
        if visit_rows:
            conn.execute(insert(t.visits), visit_rows)
    engine.dispose()


def cover_urls(url: str) -> dict[int, str | None]:
    """user id → the cover URL on the user's passport."""
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(t.passports.select()).mappings().all()
    engine.dispose()
    return {row["user_id"]: row["cover_image_url"] for row in rows}
