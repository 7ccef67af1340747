"""Rows of the app database's four tables, and the one function that writes them.

The app owns these tables (``app_schema.py``); the pipeline itself only links covers. Rows are
written here for the demo (``demo/seed.py``), the tests' small datasets and the benchmark's
workload, so that all three store users, passports, places and visits the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import create_engine, func, insert, select

from passport_pipeline import app_schema

# Parents first: each table's foreign keys point at tables before it.
TABLES = (app_schema.users, app_schema.places, app_schema.passports, app_schema.visits)
BATCH = 5000  # rows per INSERT: the benchmark writes hundreds of thousands of visits


@dataclass
class AppRows:
    """Column values per table; ``visited_at`` is an aware instant, ``created_at`` naive UTC."""

    users: list[dict] = field(default_factory=list)
    passports: list[dict] = field(default_factory=list)
    places: list[dict] = field(default_factory=list)
    visits: list[dict] = field(default_factory=list)

    def add_user(self, user_id: int, nickname: str, created_at: datetime) -> None:
        self.users.append({"id": user_id, "nickname": nickname, "created_at": created_at})

    def add_place(self, place_id: int, name: str, category: str, city: str, country: str) -> None:
        self.places.append(
            {"id": place_id, "name": name, "category": category, "city": city, "country": country}
        )

    def add_passport(self, passport_id: int, user_id: int, title: str, created_at: datetime) -> int:
        """A passport without a cover, last updated when it was created."""
        self.passports.append(
            {
                "id": passport_id,
                "user_id": user_id,
                "title": title,
                "cover_image_url": None,
                "created_at": created_at,
                "updated_at": created_at,
            }
        )
        return passport_id

    def add_visit(self, passport_id: int, place_id: int, visited_at: datetime) -> None:
        """The next visit (ids count from 1 in the order visits are added)."""
        self.visits.append(
            {
                "id": len(self.visits) + 1,
                "passport_id": passport_id,
                "place_id": place_id,
                "visited_at": visited_at,
            }
        )

    def counts(self) -> dict[str, int]:
        return {table.name: len(getattr(self, table.name)) for table in TABLES}


def write_app_rows(url: str, rows: AppRows, *, reset: bool = True) -> int:
    """Create the four tables at ``url`` and insert ``rows``; returns how many were written.

    ``reset`` drops the tables first. Without it, existing rows stay and only the rows whose
    id a table does not have yet are added.
    """
    engine = create_engine(url)
    # sqlite has no zones: it stores UTC wall time, as the app_db resource expects.
    on_sqlite = engine.dialect.name == "sqlite"
    written = 0
    try:
        if reset:
            app_schema.metadata.drop_all(engine, tables=list(TABLES))
        app_schema.metadata.create_all(engine, tables=list(TABLES))
        with engine.begin() as conn:
            for table in TABLES:
                table_rows = getattr(rows, table.name)
                if table is app_schema.visits and on_sqlite:
                    table_rows = [
                        {**r, "visited_at": _utc_wall_time(r["visited_at"])} for r in table_rows
                    ]
                if not reset and conn.scalar(select(func.count()).select_from(table)):
                    present = set(conn.scalars(select(table.c.id)))
                    table_rows = [r for r in table_rows if r["id"] not in present]
                for start in range(0, len(table_rows), BATCH):
                    conn.execute(insert(table), table_rows[start : start + BATCH])
                written += len(table_rows)
    finally:
        engine.dispose()
    return written


def _utc_wall_time(instant: datetime) -> datetime:
    return instant.astimezone(UTC).replace(tzinfo=None)
