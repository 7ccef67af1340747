"""The app database: the month's users, a user's latest passport and visits, linking a cover."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import UTC, datetime

from dagster import ConfigurableResource
from pydantic import PrivateAttr
from sqlalchemy import Engine, and_, create_engine, false, func, not_, or_, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError

from passport_pipeline import app_schema as t
from passport_pipeline.domain.keys import cover_url_patterns
from passport_pipeline.domain.months import Month
from passport_pipeline.domain.records import Passport, Visit

_DBAPI_MODULES = {"pysqlite": "sqlite3"}


_ENGINE_LOCK = threading.Lock()


class AppDatabaseError(RuntimeError):
    """The app database cannot be reached or used; the message says which and why."""


def redacted_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<an unparseable database URL>"


class AppDatabase(ConfigurableResource):
    """The app's PostgreSQL (or, for the demo, sqlite) database, through SQLAlchemy."""

    url: str

    _engine: Engine | None = PrivateAttr(default=None)

    @property
    def engine(self) -> Engine:
        with _ENGINE_LOCK:  # steps in threads share this resource: one engine, not one each
            return self._engine_once()

    def _engine_once(self) -> Engine:
        if self._engine is None:
            try:
                parsed = make_url(self.url)
            except ArgumentError as error:
                raise AppDatabaseError(
                    f"PASSPORT_DATABASE_URL is not a database URL: {error}"
                ) from error
            options: dict = {"pool_pre_ping": True}
            if parsed.get_backend_name() == "postgresql":
                # Fail fast instead of hanging a step when the server is away.
                options["connect_args"] = {"connect_timeout": 10}
                # A step makes a few short queries; steps in threads share the pool, and one
                # that finds it busy waits its turn (milliseconds) rather than failing.
                options["pool_size"] = 2
                options["max_overflow"] = 8
                options["pool_timeout"] = 120
            self._engine = create_engine(parsed, **options)
        return self._engine

    def step_modules(self) -> tuple[str, ...]:
        """The SQLAlchemy dialect and DB-API driver this URL loads on first connect."""
        try:
            parsed = make_url(self.url)
        except ArgumentError:
            return ()
        backend, driver = parsed.get_backend_name(), parsed.get_driver_name()
        return (f"sqlalchemy.dialects.{backend}.{driver}", _DBAPI_MODULES.get(driver, driver))

    def teardown_after_execution(self, context) -> None:
        if self._engine is not None:
            self._engine.dispose()

    def _connect(self):
        try:
            return self.engine.connect()
        except OperationalError as error:
            reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
            raise AppDatabaseError(
                f"cannot reach the app database at {redacted_url(self.url)}: {reason}"
            ) from error

    def _is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def _bounds(self, month: Month) -> tuple[datetime, datetime]:
        start, end = month.utc_bounds()
        if self._is_sqlite():
            # sqlite keeps no zone; the demo schema stores UTC wall time.
            return start.replace(tzinfo=None), end.replace(tzinfo=None)
        return start, end

    def month_user_ids(self, month: Month) -> list[int]:
        """Every user with at least one visit in the month (Seoul calendar), ascending."""
        start, end = self._bounds(month)
        query = (
            select(t.passports.c.user_id)
            .join(t.visits, t.visits.c.passport_id == t.passports.c.id)
            .where(and_(t.visits.c.visited_at >= start, t.visits.c.visited_at < end))
            .distinct()
            .order_by(t.passports.c.user_id)
        )
        with self._connect() as conn:
            return [int(row[0]) for row in conn.execute(query)]

    def existing_user_ids(self, user_ids: Iterable[int]) -> set[int]:
        ids = sorted(set(user_ids))
        if not ids:
            return set()
        with self._connect() as conn:
            rows = conn.execute(select(t.users.c.id).where(t.users.c.id.in_(ids)))
            return {int(row[0]) for row in rows}

    def latest_passport(self, user_id: int) -> Passport | None:
        query = (
            select(
                t.passports.c.id,
                t.passports.c.user_id,
                t.users.c.nickname,
                t.passports.c.title,
                t.passports.c.cover_image_url,
            )
            .join(t.users, t.users.c.id == t.passports.c.user_id)
            .where(t.passports.c.user_id == user_id)
            .order_by(t.passports.c.created_at.desc(), t.passports.c.id.desc())
            .limit(1)
        )
        with self._connect() as conn:
            row = conn.execute(query).first()
        return Passport(*row) if row else None

    def month_visits(self, user_id: int, month: Month) -> list[Visit]:
        """The user's visits in the month, over all of the user's passports, oldest first."""
        start, end = self._bounds(month)
        query = (
            select(
                t.places.c.name,
                t.places.c.category,
                t.places.c.city,
                t.places.c.country,
                t.visits.c.visited_at,
            )
            .join(t.places, t.places.c.id == t.visits.c.place_id)
            .join(t.passports, t.passports.c.id == t.visits.c.passport_id)
            .where(t.passports.c.user_id == user_id)
            .where(and_(t.visits.c.visited_at >= start, t.visits.c.visited_at < end))
            .order_by(t.visits.c.visited_at, t.visits.c.id)
        )
        with self._connect() as conn:
            return [
                Visit(name, category, city, country, _aware(visited_at))
                for name, category, city, country, visited_at in conn.execute(query)
            ]

    def month_visits_without_place(self, user_id: int, month: Month) -> int:
        """How many of the user's visits in the month name a place that no longer exists (the
        app deleted it): they count for planning the month, and give nothing to draw."""
        start, end = self._bounds(month)
        query = (
            select(func.count())
            .select_from(t.visits)
            .join(t.passports, t.passports.c.id == t.visits.c.passport_id)
            .outerjoin(t.places, t.places.c.id == t.visits.c.place_id)
            .where(t.passports.c.user_id == user_id)
            .where(and_(t.visits.c.visited_at >= start, t.visits.c.visited_at < end))
            .where(t.places.c.id.is_(None))
        )
        with self._connect() as conn:
            return int(conn.execute(query).scalar_one())

    def link_cover(self, passport_id: int, url: str, month: Month) -> bool:
        """Point the passport at ``month``'s stored cover; True when the passport changed.

        A passport only moves forward: it keeps its cover when that is already this one or a
        cover of a later month. The check is part of the UPDATE, so two runs of different
        months (a backfill beside the schedule) cannot interleave into a step backwards."""
        cover = t.passports.c.cover_image_url
        # Covers exist for finished months only; one month of slack covers clocks near midnight.
        later = month.next().through(Month.of(datetime.now(UTC)).next())
        statement = (
            update(t.passports)
            .where(t.passports.c.id == passport_id)
            .where(or_(cover.is_(None), cover != url))
            .where(
                or_(
                    cover.is_(None), not_(or_(false(), *map(cover.like, cover_url_patterns(later))))
                )
            )
            .values(cover_image_url=url, updated_at=_utc_wall_time())
        )
        with self._connect() as conn, conn.begin():
            return conn.execute(statement).rowcount > 0


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _utc_wall_time() -> datetime:
    # updated_at is a TIMESTAMP without zone in the app's schema: it holds UTC wall time.
    return datetime.now(UTC).replace(tzinfo=None)
