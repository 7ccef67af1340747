from datetime import UTC, datetime

import pytest

from passport_pipeline.domain.months import Month
from passport_pipeline.resources.app_db import AppDatabase, AppDatabaseError
from passport_pipeline_tests.support.dataset import UserRow, cover_urls, october, write_dataset

OCTOBER = Month(2026, 10)


@pytest.fixture
def db(app_db_url) -> AppDatabase:
    write_dataset(
        app_db_url,
        [
            UserRow(1, visits=[(1, october(3)), (2, october(4)), (1, october(20))]),
            UserRow(2, visits=[(3, datetime(2026, 9, 30, 15, 0, tzinfo=UTC))]),  # 1 Oct KST
            UserRow(3, visits=[(4, datetime(2026, 10, 31, 15, 30, tzinfo=UTC))]),  # 1 Nov KST
            UserRow(4, visits=[(5, datetime(2026, 9, 30, 14, 59, tzinfo=UTC))]),  # 30 Sep KST
            UserRow(5, title=None),
        ],
    )
    return AppDatabase(url=app_db_url)


def test_month_users_follow_the_seoul_calendar(db):
    assert db.month_user_ids(OCTOBER) == [1, 2]
    assert db.month_user_ids(Month(2026, 11)) == [3]
    assert db.month_user_ids(Month(2026, 9)) == [4]


def test_latest_passport_and_month_visits(db):
    passport = db.latest_passport(1)
    assert (passport.id, passport.user_id, passport.nickname) == (1001, 1, "user1")
    visits = db.month_visits(1, OCTOBER)
    assert [v.place_name for v in visits] == [
        "Gyeongbokgung Palace",
        "Gwangjang Market",
        "Gyeongbokgung Palace",
    ]
    assert all(v.visited_at.tzinfo is not None for v in visits)
    assert db.month_visits(3, OCTOBER) == []
    assert db.latest_passport(5) is None


def test_existing_user_ids(db):
    assert db.existing_user_ids([1, 5, 99, 1]) == {1, 5}
    assert db.existing_user_ids([]) == set()


def cover(store: str, month: str, token: str = "0f" * 16) -> str:
    return f"{store}/covers/{month}/{token}.png"


def test_link_cover_sets_url_once(db, app_db_url):
    url = cover("file:///home/images", "2026-10")
    assert db.link_cover(1001, url, OCTOBER) is True
    assert db.link_cover(1001, url, OCTOBER) is False
    assert cover_urls(app_db_url)[1] == url


@pytest.mark.parametrize(
    "store", ["file:///srv/images", "s3://covers-bucket/prod", "https://cdn.example/covers"]
)
def test_a_passport_only_moves_forward(db, app_db_url, store):
    september, october, november = (cover(store, m) for m in ("2026-09", "2026-10", "2026-11"))
    assert db.link_cover(1001, october, OCTOBER) is True
    # A re-run or backfill of an older month never replaces a later month's cover...
    assert db.link_cover(1001, september, Month(2026, 9)) is False
    assert cover_urls(app_db_url)[1] == october
    # ...the month's own cover is relinked (say, the app cleared it or pointed elsewhere)...
    assert db.link_cover(1001, cover(store, "2026-10", "1a" * 16), OCTOBER) is True
    assert db.link_cover(1001, october, OCTOBER) is True
    # ...a later month moves it on, and a cover that is not a monthly one is replaced.
    assert db.link_cover(1001, november, Month(2026, 11)) is True
    assert db.link_cover(1001, october, OCTOBER) is False
    assert cover_urls(app_db_url)[1] == november
    db.engine.dispose()


def test_a_cover_from_outside_the_pipeline_is_replaced(db, app_db_url):
    assert db.link_cover(1001, "https://app.example/default-cover.png", OCTOBER) is True
    assert db.link_cover(1001, cover("file:///srv", "2024-01"), Month(2024, 1)) is True


def test_unreachable_database_names_the_server_and_hides_the_password():
    db = AppDatabase(url="postgresql+psycopg2://app:hunter2@127.0.0.1:5999/passports")
    with pytest.raises(AppDatabaseError) as raised:
        db.month_user_ids(OCTOBER)
    message = str(raised.value)
    assert (
        "cannot reach the app database at postgresql+psycopg2://app:***@127.0.0.1:5999" in message
    )
    assert "hunter2" not in message


def test_malformed_url_is_named():
    with pytest.raises(AppDatabaseError, match="not a database URL"):
        AppDatabase(url="not a url").month_user_ids(OCTOBER)
