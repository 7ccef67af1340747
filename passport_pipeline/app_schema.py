"""The app database's tables, as the app defines them (an external contract).

The pipeline reads these tables and writes only ``passports.cover_image_url`` and
``passports.updated_at``. ``create_all`` is used for the demo and test databases only.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    MetaData,
    Table,
    Text,
)

metadata = MetaData()

users = Table(
    "users",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("nickname", Text, nullable=False),
    Column("created_at", DateTime, nullable=False),
)

passports = Table(
    "passports",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("user_id", BigInteger, ForeignKey("users.id"), nullable=False),
    Column("title", Text, nullable=False),
    Column("cover_image_url", Text, nullable=True),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
)

places = Table(
    "places",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("name", Text, nullable=False),
    Column("category", Text, nullable=False),
    Column("city", Text, nullable=False),
    Column("country", Text, nullable=False),
)

visits = Table(
    "visits",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("passport_id", BigInteger, ForeignKey("passports.id"), nullable=False),
    Column("place_id", BigInteger, ForeignKey("places.id"), nullable=False),
    Column("visited_at", DateTime(timezone=True), nullable=False),
    # The month query filters on time first; the app is expected to have an equivalent index.
    Index("ix_visits_visited_at", "visited_at"),
)
