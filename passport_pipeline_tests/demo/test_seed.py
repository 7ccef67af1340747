"""The demo dataset: what seeding writes, and which users each Seoul month sees."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, create_engine, func, select

from passport_pipeline import app_schema as t
from passport_pipeline.demo.seed import main, seed_demo
from passport_pipeline.domain.months import Month

DEMO_MONTHS = ("2026-08", "2026-09", "2026-10")


@pytest.fixture
def engine_for():
    engines: list[Engine] = []

    def make(url: str) -> Engine:
        engines.append(create_engine(url))
        return engines[-1]

    yield make
    for engine in engines:
        engine.dispose()


def stored(engine: Engine, instant: datetime) -> datetime:
    """How the demo stores an aware instant: naive UTC wall time on sqlite."""
    return instant.replace(tzinfo=None) if engine.dialect.name == "sqlite" else instant


def table_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            table.name: conn.scalar(select(func.count()).select_from(table))
            for table in (t.users, t.passports, t.places, t.visits)
        }


def month_users(engine: Engine, month: Month) -> set[int]:
    start, end = month.utc_bounds()
    query = (
        select(t.passports.c.user_id)
        .join(t.visits, t.visits.c.passport_id == t.passports.c.id)
        .where(t.visits.c.visited_at >= stored(engine, start))
        .where(t.visits.c.visited_at < stored(engine, end))
        .distinct()
    )
    with engine.connect() as conn:
        return set(conn.scalars(query))


def user_of_visit_at(engine: Engine, instant: datetime) -> int:
    query = (
        select(t.passports.c.user_id)
        .join(t.visits, t.visits.c.passport_id == t.passports.c.id)
        .where(t.visits.c.visited_at == stored(engine, instant))
    )
    with engine.connect() as conn:
        return conn.scalars(query).one()


def assert_matches_database(summary: dict, engine: Engine) -> None:
    counts = table_counts(engine)
    assert {name: summary[name] for name in counts} == counts
    for key, qualifying in summary["qualifying"].items():
        assert len(month_users(engine, Month.parse(key))) == qualifying, key


def test_seeding_writes_the_counts_it_returns(sqlite_url, engine_for):
    summary = seed_demo(sqlite_url)
    engine = engine_for(sqlite_url)
    assert summary["users"] == 40
    assert summary["places"] >= 30
    assert_matches_database(summary, engine)


def test_each_demo_month_has_twenty_to_thirty_users(sqlite_url, engine_for):
    summary = seed_demo(sqlite_url)
    engine = engine_for(sqlite_url)
    for key in DEMO_MONTHS:
        assert 20 <= summary["qualifying"][key] <= 30, key
        assert len(month_users(engine, Month.parse(key))) == summary["qualifying"][key]


@pytest.mark.parametrize(
    ("instant", "month", "not_month"),
    [
        (datetime(2026, 10, 31, 15, 30, tzinfo=UTC), Month(2026, 11), Month(2026, 10)),
        (datetime(2026, 9, 30, 14, 59, tzinfo=UTC), Month(2026, 9), Month(2026, 10)),
    ],
)
def test_edge_visits_belong_to_their_seoul_month(sqlite_url, engine_for, instant, month, not_month):
    seed_demo(sqlite_url)
    engine = engine_for(sqlite_url)
    user = user_of_visit_at(engine, instant)
    assert user in month_users(engine, month)
    assert user not in month_users(engine, not_month)


def test_the_dataset_has_the_awkward_cases(sqlite_url, engine_for):
    seed_demo(sqlite_url)
    engine = engine_for(sqlite_url)
    with engine.connect() as conn:
        users = set(conn.scalars(select(t.users.c.id)))
        passports = conn.execute(
            select(t.passports.c.id, t.passports.c.user_id, t.passports.c.title)
        ).all()
        visited_passports = set(conn.scalars(select(t.visits.c.passport_id).distinct()))
    owners = [user_id for _, user_id, _ in passports]
    assert users - set(owners), "some users have no passport"
    twice = {user_id for user_id in owners if owners.count(user_id) == 2}
    assert len(twice) >= 2, "a few users have two passports"
    older = {pid for pid, user_id, _ in passports if user_id in twice} - {
        max(pid for pid, user_id, _ in passports if user_id == owner) for owner in twice
    }
    assert older & visited_passports, "some visits are on an older passport"
    odd = [title for _, _, title in passports if "\n" in title and '"' in title]
    assert odd and len(odd[0]) > 200
    for key in DEMO_MONTHS:
        assert set(owners) - month_users(engine, Month.parse(key)), key


def has_hangul(text: str) -> bool:
    return any("\uac00" <= char <= "\ud7a3" for char in text)


def test_the_demo_speaks_korean_with_some_english(sqlite_url, engine_for):
    seed_demo(sqlite_url)
    engine = engine_for(sqlite_url)
    october = month_users(engine, Month(2026, 10))
    latest = (
        select(t.passports.c.user_id, func.max(t.passports.c.id).label("id"))
        .group_by(t.passports.c.user_id)
        .subquery()
    )
    with engine.connect() as conn:
        columns = {
            "nicknames": list(conn.scalars(select(t.users.c.nickname))),
            "places": list(conn.scalars(select(t.places.c.name))),
            "cities": list(conn.scalars(select(t.places.c.city))),
            # What `make demo` draws: the titles of the demo month's users' latest passports.
            "october titles": list(
                conn.scalars(
                    select(t.passports.c.title)
                    .join(latest, latest.c.id == t.passports.c.id)
                    .where(latest.c.user_id.in_(october))
                )
            ),
        }
    for name, values in columns.items():
        korean = [value for value in values if has_hangul(value)]
        assert len(values) / 2 < len(korean) < len(values), name


def test_reseeding_gives_the_same_data(sqlite_url, engine_for):
    first = seed_demo(sqlite_url)
    engine = engine_for(sqlite_url)
    counts = table_counts(engine)
    second = seed_demo(sqlite_url)
    assert second == first
    assert table_counts(engine) == counts
    kept = seed_demo(sqlite_url, reset=False)
    assert kept["inserted_rows"] == 0
    assert table_counts(engine) == counts


def test_command_seeds_the_given_database_and_says_so(tmp_path, engine_for, capsys):
    url = f"sqlite:///{tmp_path / 'not' / 'yet' / 'there.sqlite3'}"
    assert main(["--database-url", url]) == 0
    out = capsys.readouterr().out
    assert str(tmp_path / "not" / "yet" / "there.sqlite3") in out
    assert "40 users" in out
    for key in DEMO_MONTHS:
        assert f"{key}: {len(month_users(engine_for(url), Month.parse(key)))}" in out


def test_command_defaults_to_the_sqlite_file_under_passport_home(
    tmp_path, monkeypatch, engine_for, capsys
):
    monkeypatch.setenv("PASSPORT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PASSPORT_DATABASE_URL", raising=False)
    assert main([]) == 0
    database = tmp_path / "home" / "app.sqlite3"
    assert database.is_file()
    assert table_counts(engine_for(f"sqlite:///{database}"))["users"] == 40
    assert str(database) in capsys.readouterr().out


@pytest.mark.postgres
def test_seeding_postgresql_gives_the_same_data(postgres_url, sqlite_url, engine_for):
    summary = seed_demo(postgres_url)
    engine = engine_for(postgres_url)
    assert summary == seed_demo(sqlite_url)
    assert_matches_database(summary, engine)
    user = user_of_visit_at(engine, datetime(2026, 10, 31, 15, 30, tzinfo=UTC))
    assert user in month_users(engine, Month(2026, 11))
    assert user not in month_users(engine, Month(2026, 10))
    assert seed_demo(postgres_url) == summary
    assert table_counts(engine) == table_counts(engine_for(sqlite_url))
