"""The benchmark's dataset, made the same way for the app database and for the baseline.

N users (ids 1..N), each with one passport (id 1_000_000 + user id) and, in each benchmarked
month, 2 or 3 visits well inside that month on the Seoul calendar. Months start at 2026-10 and
go backwards (2026-10, 2026-09, ...).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

from passport_pipeline.app_data import AppRows, write_app_rows
from passport_pipeline.domain.months import Month
from passport_pipeline.domain.prompt import build_prompt
from passport_pipeline.domain.records import CoverRequest, Passport, Visit
from passport_pipeline_tests.support.dataset import PLACES as TEST_PLACES

FIRST_MONTH = Month(2026, 10)
PLACES = [
    *TEST_PLACES,
    (6, "Bukchon Hanok Village", "neighbourhood", "Seoul", "South Korea"),
    (7, "Gamcheon Culture Village", "neighbourhood", "Busan", "South Korea"),
]
CREATED = datetime(2026, 1, 1)


def months(count: int) -> list[Month]:
    found, month = [], FIRST_MONTH
    for _ in range(count):
        found.append(month)
        month = month.previous()
    return found


def passport_id(user_id: int) -> int:
    return 1_000_000 + user_id


def passport(user_id: int) -> Passport:
    return Passport(passport_id(user_id), user_id, f"user{user_id}", f"Travels of {user_id}", None)


def visits(user_id: int, month: Month) -> list[tuple[int, Visit]]:
    """(place id, visit) pairs: 2 or 3 visits between the 2nd and the 26th, Seoul time."""
    found = []
    for j in range(2 + user_id % 2):
        place = PLACES[(user_id + 3 * j) % len(PLACES)]
        day = 2 + (user_id * 7 + j * 5) % 24
        when = month.seoul_start() + timedelta(days=day, hours=9 + j, minutes=user_id % 60)
        found.append((place[0], Visit(place[1], place[2], place[3], place[4], when)))
    return sorted(found, key=lambda pair: pair[1].visited_at)


def requests(users: int, month_count: int) -> Iterator[CoverRequest]:
    """What the job asks the model for, user by user, month by month (the baseline's load)."""
    for month in months(month_count):
        for user_id in range(1, users + 1):
            owner, month_visits = passport(user_id), [v for _, v in visits(user_id, month)]
            yield CoverRequest(
                prompt=build_prompt(owner, month, month_visits),
                month=month,
                nickname=owner.nickname,
                title=owner.title,
                visits=tuple(month_visits),
            )


def write_app_database(url: str, users: int, month_count: int) -> dict[str, int]:
    """Create the app's tables in an empty database and fill them (bulk inserts)."""
    rows = AppRows()
    for place in PLACES:
        rows.add_place(*place)
    for user_id in range(1, users + 1):
        owner = passport(user_id)
        rows.add_user(user_id, owner.nickname, CREATED)
        rows.add_passport(owner.id, user_id, owner.title, CREATED)
    for month in months(month_count):
        for user_id in range(1, users + 1):
            for place_id, visit in visits(user_id, month):
                rows.add_visit(passport_id(user_id), place_id, visit.visited_at)
    write_app_rows(url, rows)
    return rows.counts()
