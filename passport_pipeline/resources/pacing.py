"""The deployment's pace with the image model, kept where the pool is kept: the instance's
database (its PostgreSQL on ``deploy/dagster.yaml``; a sqlite file in ``DAGSTER_HOME`` on the
embedded instance). Every run, step thread, step process and machine of the deployment reads
and writes the same two tables, each decision in one locked transaction:

- ``passport_pacing``: the pace (``domain/pacing.py``: configured limit, rate, Google's quota),
  and each run's width;
- ``passport_pacing_calls``: one row per paid attempt (``attempt``: its start, for the rate)
  and one per user being generated (``lease``: held across the user's attempts, for the
  width), each with its run, start and end.

``Pacer.enter`` waits until the run's width has room for one more user and holds the place
until ``Pacer.leave``; ``Pacer.call`` runs before every paid attempt (transport and step
retries included) and waits until the rate allows one more start; ``Pacer.done`` tells the
pace how the attempt ended. ``python -m passport_pipeline.cli.quota`` reads and changes the
limit live, as ``dagster instance concurrency set`` does for the pool.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from enum import StrEnum

from sqlalchemy import (
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from passport_pipeline.domain import pacing
from passport_pipeline.domain.pacing import Pace

_metadata = MetaData()
STATE = Table(
    "passport_pacing",
    _metadata,
    Column("key", String(200), primary_key=True),
    Column("value", Text, nullable=False),
)
CALLS = Table(
    "passport_pacing_calls",
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("scope", String(200), nullable=False, index=True),
    Column("kind", String(20), nullable=False),  # attempt | lease
    Column("started", Float, nullable=False, index=True),
    Column("ended", Float, nullable=True),
)
PACE_KEY = "pace"
OVERRIDE_KEY = "limit_override"  # set by the CLI: a number, or "none" (no limit)
UNLIMITED = "none"
MOST_WIDTH = 100_000  # the pool bounds the width in practice
POLL_S = 0.5  # how often a call waiting for the width looks again
KEPT_S = 600.0  # calls older than this are forgotten


class Outcome(StrEnum):
    USABLE = "usable"  # an image, or a refusal: the model works
    RATE_LIMITED = "rate_limited"  # a per-minute 429
    OTHER = "other"  # an unusable answer, an error, a timeout: the pace does not move


@dataclass(frozen=True)
class PaceReport:
    pace: Pace
    started_last_minute: int
    in_flight: int
    widths: dict[str, int]


def instance_database_url(instance) -> str:
    """The database the instance keeps its pools in (PostgreSQL), or a sqlite file beside
    the embedded instance's own."""
    url = getattr(instance.event_log_storage, "postgres_url", None)
    if url:
        # SQLAlchemy 2.1 reads postgresql:// as psycopg 3; dagster-postgres installs psycopg2.
        return url.replace("postgresql://", "postgresql+psycopg2://", 1)
    return f"sqlite:///{os.path.join(instance.root_directory, 'passport_pacing.db')}"


class PacingStore:
    """The two tables, and each decision taken under the pace row's lock."""

    def __init__(
        self,
        url: str,
        clock: Callable[[], float] = time.time,
        start_rate: float = pacing.START_RATE,
    ):
        self.url = url
        self.clock = clock
        self.start_rate = start_rate  # a new deployment's rate, without a configured limit
        self._engine: Engine | None = None
        self._engine_lock = threading.Lock()  # the step threads of a run share one store

    def engine(self) -> Engine:
        with self._engine_lock:
            return self._engine or self._create_engine()

    def _create_engine(self) -> Engine:
        if self.url.startswith("sqlite"):
            engine = create_engine(self.url, connect_args={"timeout": 60})

            @event.listens_for(engine, "connect")
            def _no_implicit_begin(dbapi_connection, _record) -> None:
                dbapi_connection.isolation_level = None

            @event.listens_for(engine, "begin")
            def _write_lock_first(connection) -> None:
                # One writer at a time, from the first statement: the decision is atomic.
                connection.exec_driver_sql("BEGIN IMMEDIATE")

        else:
            # Every decision takes the pace row's lock, so the step threads' calls queue on it
            # whatever the number of connections: a few, and a thread that finds them busy
            # waits its turn (milliseconds). 50 threads each holding a connection of their own
            # would take half of PostgreSQL's default 100 from one run.
            engine = create_engine(
                self.url, pool_size=2, max_overflow=6, pool_timeout=120, pool_pre_ping=True
            )
        _create_tables(engine)
        self._engine = engine
        return engine

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    # -- the decisions ---------------------------------------------------------------------

    def try_start(self, scope: str, env_limit: float | None) -> tuple[int | None, float]:
        """Record one more paid attempt if the rate allows it now: (its id, 0), or (None,
        seconds to wait before asking again)."""
        with self.engine().begin() as conn:
            now = self.clock()
            pace = self._locked_pace(conn, env_limit)
            conn.execute(delete(CALLS).where(CALLS.c.started < now - KEPT_S))
            last_start = conn.execute(
                select(func.max(CALLS.c.started)).where(CALLS.c.kind == "attempt")
            ).scalar_one_or_none()
            wait = pacing.wait_for_rate(last_start, pace.allowed, now)
            if wait > 0:
                return None, wait
            return self._insert(conn, scope, "attempt", now), 0.0

    def try_enter(
        self, scope: str, env_limit: float | None, start_width: int = pacing.START_WIDTH
    ) -> int | None:
        """Take a place in ``scope``'s width for one user, if there is room now: its id."""
        with self.engine().begin() as conn:
            now = self.clock()
            self._locked_pace(conn, env_limit)
            if self._in_flight(conn, now, scope) >= self._width(conn, scope, start_width):
                return None
            return self._insert(conn, scope, "lease", now)

    def end(self, row_id: int) -> None:
        """A place in the width given back (or an attempt that was never sent forgotten)."""
        with self.engine().begin() as conn:
            conn.execute(delete(CALLS).where(CALLS.c.id == row_id))

    def finish(
        self,
        call_id: int,
        scope: str,
        outcome: Outcome,
        env_limit: float | None,
        quota_value: float | None = None,
        start_width: int = pacing.START_WIDTH,
    ) -> Pace:
        """The call ended; the pace and the scope's width learn from how."""
        with self.engine().begin() as conn:
            now = self.clock()
            pace = self._locked_pace(conn, env_limit)
            conn.execute(update(CALLS).where(CALLS.c.id == call_id).values(ended=now))
            if outcome is Outcome.USABLE:
                pace = pacing.after_usable(pace)
                width = pacing.widen(self._width(conn, scope, start_width), MOST_WIDTH)
                self._put(conn, f"width:{scope}", {"width": width})
            elif outcome is Outcome.RATE_LIMITED:
                pace = pacing.after_rate_limited(pace, quota_value, now)
            self._put(conn, PACE_KEY, asdict(pace))
            return pace

    def set_limit(self, limit: float | None) -> Pace:
        """The operator's live change (``None``: no limit, whatever the environment says)."""
        with self.engine().begin() as conn:
            pace = pacing.with_limit(self._locked_pace(conn, None), limit)
            self._put(conn, OVERRIDE_KEY, {"limit": UNLIMITED if limit is None else limit})
            self._put(conn, PACE_KEY, asdict(pace))
            return pace

    def clear_limit(self, env_limit: float | None) -> Pace:
        """Back to the environment's ``GEMINI_MAX_REQUESTS_PER_MINUTE``."""
        with self.engine().begin() as conn:
            conn.execute(delete(STATE).where(STATE.c.key == OVERRIDE_KEY))
            pace = pacing.with_limit(self._locked_pace(conn, env_limit), env_limit)
            self._put(conn, PACE_KEY, asdict(pace))
            return pace

    def report(self, env_limit: float | None) -> PaceReport:
        with self.engine().begin() as conn:
            now = self.clock()
            pace = self._locked_pace(conn, env_limit)
            started = conn.execute(
                select(func.count()).where(
                    CALLS.c.kind == "attempt", CALLS.c.started > now - pacing.WINDOW_S
                )
            ).scalar_one()
            widths = {
                row.key.removeprefix("width:"): int(json.loads(row.value)["width"])
                for row in conn.execute(select(STATE).where(STATE.c.key.like("width:%")))
            }
            return PaceReport(pace, int(started), self._in_flight(conn, now, None), widths)

    def snapshot(self, scope: str) -> tuple[Pace | None, int | None]:
        """The pace as stored and ``scope``'s width, read without a lock (None: nothing paced
        yet), for progress lines."""
        with self.engine().connect() as conn:
            pace, width = self._get(conn, PACE_KEY), self._get(conn, f"width:{scope}")
        return (Pace(**pace) if pace else None), (int(width["width"]) if width else None)

    # -- internals -------------------------------------------------------------------------

    def _locked_pace(self, conn: Connection, env_limit: float | None) -> Pace:
        """The pace, its row locked for this transaction (created on first use); the limit is
        the operator's override if one was set, else the environment's."""
        query = select(STATE.c.value).where(STATE.c.key == PACE_KEY)
        if conn.dialect.name == "postgresql":
            first = pacing.start(env_limit, self.start_rate)
            conn.execute(_insert_if_missing(PACE_KEY, json.dumps(asdict(first))))
            query = query.with_for_update()
        raw = conn.execute(query).scalar_one_or_none()
        pace = Pace(**json.loads(raw)) if raw else pacing.start(env_limit, self.start_rate)
        override = self._get(conn, OVERRIDE_KEY)
        limit = env_limit if override is None else override["limit"]
        limit = None if limit == UNLIMITED else limit
        return pacing.with_limit(pace, limit) if limit != pace.limit else pace

    def _width(self, conn: Connection, scope: str, start_width: int) -> int:
        found = self._get(conn, f"width:{scope}")
        return int(found["width"]) if found else start_width

    def _insert(self, conn: Connection, scope: str, kind: str, now: float) -> int:
        inserted = conn.execute(insert(CALLS).values(scope=scope, kind=kind, started=now))
        return int(inserted.inserted_primary_key[0])

    def _in_flight(self, conn: Connection, now: float, scope: str | None) -> int:
        """Users being generated (places in the width). A place whose process died is never
        given back: after KEPT_S it is no longer counted."""
        query = select(func.count()).where(
            CALLS.c.kind == "lease", CALLS.c.ended.is_(None), CALLS.c.started > now - KEPT_S
        )
        if scope is not None:
            query = query.where(CALLS.c.scope == scope)
        return int(conn.execute(query).scalar_one())

    def _get(self, conn: Connection, key: str) -> dict | None:
        raw = conn.execute(select(STATE.c.value).where(STATE.c.key == key)).scalar_one_or_none()
        return json.loads(raw) if raw else None

    def _put(self, conn: Connection, key: str, value: dict) -> None:
        text = json.dumps(value)
        if conn.execute(update(STATE).where(STATE.c.key == key).values(value=text)).rowcount == 0:
            conn.execute(insert(STATE).values(key=key, value=text))


def _create_tables(engine: Engine) -> None:
    """The two tables, if missing. Two processes (or machines) of a new deployment may create
    them at the same instant: the one that loses finds them made."""
    try:
        _metadata.create_all(engine, checkfirst=True)
    except (IntegrityError, ProgrammingError, OperationalError):
        if not inspect(engine).has_table(CALLS.name):
            raise


def _insert_if_missing(key: str, value: str):
    from sqlalchemy.dialects.postgresql import insert as pg_insert

    return pg_insert(STATE).values(key=key, value=value).on_conflict_do_nothing()


class Pacer:
    """What the model's client calls around each paid attempt of one run (``scope``)."""

    def __init__(
        self,
        store: PacingStore,
        scope: str,
        env_limit: float | None,
        sleep: Callable[[float], None],
        start_width: int = pacing.START_WIDTH,
        check: Callable[[], None] = lambda: None,
    ):
        self.store, self.scope, self.env_limit, self._sleep = store, scope, env_limit, sleep
        self.start_width = start_width
        self._check = check  # raises to stop waiting (the run was stopped)

    def enter(self) -> int:
        """Wait (stop-aware, via ``sleep``) for a place in the run's width; the place's id."""
        while (place := self.store.try_enter(self.scope, self.env_limit, self.start_width)) is None:
            self._check()
            self._sleep(POLL_S)
        return place

    def leave(self, place: int) -> None:
        self.store.end(place)

    def call(self) -> int:
        """Wait (stop-aware) until the rate lets one more attempt start; the attempt's id."""
        while True:
            call_id, wait = self.store.try_start(self.scope, self.env_limit)
            if call_id is not None:
                return call_id
            self._check()
            self._sleep(min(wait, 5.0))

    def cancel(self, call_id: int) -> None:
        """The attempt was never sent: it takes no place in the rate."""
        self.store.end(call_id)

    def done(self, call_id: int, outcome: Outcome, quota_value: float | None = None) -> Pace:
        return self.store.finish(
            call_id, self.scope, outcome, self.env_limit, quota_value, self.start_width
        )
