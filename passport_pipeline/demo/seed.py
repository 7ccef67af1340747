"""The demo dataset: users, passports, places and visits for 2026-08 to 2026-10 (Seoul).

Run ``python -m passport_pipeline.demo.seed [--database-url URL] [--keep]``. The data is
the same on every run (a fixed random seed), and includes the awkward cases the job must
handle: users without a passport, passports without visits in a month, users with two
passports, a title full of odd characters, and visits right at the Seoul month boundaries.
Like the app, it is mostly Korean (nicknames, titles, places) with some English.
"""

from __future__ import annotations

import argparse
import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.engine import make_url

from passport_pipeline.app_data import AppRows, write_app_rows
from passport_pipeline.domain.months import SEOUL, Month

SEED = 20261031
MONTHS = (Month(2026, 8), Month(2026, 9), Month(2026, 10))
USER_COUNT = 40
USERS_WITHOUT_PASSPORT = (38, 39, 40)
USERS_WITH_TWO_PASSPORTS = (3, 11, 27)
ODD_TITLE_USER = 7
# Seoul's 2026-11-01 00:30 and 2026-09-30 23:59: each is its user's only visit that month.
NOVEMBER_EDGE = (31, datetime(2026, 10, 31, 15, 30, tzinfo=UTC))
SEPTEMBER_EDGE = (32, datetime(2026, 9, 30, 14, 59, tzinfo=UTC))
ODD_TITLE = (
    'My "best" trip\'s\n\tdiary 🎉🇰🇷 <b>{{title}}</b> `rm -rf` 나의 여행 — '
    + "a very long title that goes on and on " * 8
)
# The app is Korean: most places, nicknames and titles are in Hangul, some in English.
PLACES = [
    ("경복궁", "palace", "서울", "South Korea"),
    ("창덕궁", "palace", "서울", "South Korea"),
    ("북촌 한옥마을", "park", "서울", "South Korea"),
    ("광장시장", "market", "서울", "South Korea"),
    ("망원시장", "market", "서울", "South Korea"),
    ("국립중앙박물관", "museum", "서울", "South Korea"),
    ("리움미술관", "museum", "서울", "South Korea"),
    ("조계사", "temple", "서울", "South Korea"),
    ("서울숲", "park", "서울", "South Korea"),
    ("어니언 안국", "cafe", "서울", "South Korea"),
    ("Fritz Coffee Company", "cafe", "서울", "South Korea"),
    ("N서울타워", "park", "서울", "South Korea"),
    ("해운대 해수욕장", "beach", "부산", "South Korea"),
    ("광안리 해수욕장", "beach", "부산", "South Korea"),
    ("자갈치시장", "market", "부산", "South Korea"),
    ("범어사", "temple", "부산", "South Korea"),
    ("협재해수욕장", "beach", "제주", "South Korea"),
    ("성산일출봉", "park", "제주", "South Korea"),
    ("오설록 티뮤지엄", "cafe", "제주", "South Korea"),
    ("불국사", "temple", "경주", "South Korea"),
    ("국립경주박물관", "museum", "경주", "South Korea"),
    ("인천 차이나타운", "market", "인천", "South Korea"),
    ("송도 센트럴파크", "park", "인천", "South Korea"),
    ("Senso-ji", "temple", "Tokyo", "Japan"),
    ("Tsukiji Outer Market", "market", "Tokyo", "Japan"),
    ("Osaka Castle", "palace", "Osaka", "Japan"),
    ("Kuromon Market", "market", "Osaka", "Japan"),
    ("National Palace Museum", "museum", "Taipei", "Taiwan"),
    ("Raohe Night Market", "market", "Taipei", "Taiwan"),
    ("Café Kitsuné Aoyama", "cafe", "Tokyo", "Japan"),
]
NICKNAMES = [
    "민지", "현우", "서울산책러", "지우", "다혜", "태양", "소연", "커피_kim",
    "준호", "유나", "보라", "여행자", "성민", "하늘", "은지", "도경", "mina.park",
    "채원", "재혁", "나리", "혜진", "wanderlust_lee", "서준", "아라", "예진",
    "daniel", "소라", "경수", "하나", "jimin", "수빈", "찬우", "윤아", "가은",
    "Zoë", "우진", "somi", "훈", "ji-ae", "범석",
]  # fmt: skip
TITLES = [
    "서울 산책", "Weekend Wanderer", "커피와 사찰", "작은 여행들", "시장 가는 날",
    "바다와 돌", "궁궐 나들이", "도시 기록", "Slow Travel", "간식과 도장",
]  # fmt: skip
FIRST_PASSPORT_TITLE = "나의 첫 여권"


def build_dataset() -> AppRows:
    """Every row of the demo, per table, with ``visited_at`` as aware UTC datetimes."""
    rng = random.Random(SEED)
    created = datetime(2025, 1, 10, 3, 0)
    rows = AppRows()
    for i in range(1, USER_COUNT + 1):
        rows.add_user(i, NICKNAMES[i - 1], created + timedelta(days=3 * i))
    for i, place in enumerate(PLACES, start=1):
        rows.add_place(i, *place)
    current, older = {}, {}
    for user in rows.users:
        uid = user["id"]
        if uid in USERS_WITHOUT_PASSPORT:
            continue
        if uid in USERS_WITH_TWO_PASSPORTS:  # the older one is created first, in 2025
            older[uid] = _passport(rows, uid, FIRST_PASSPORT_TITLE, user["created_at"])
        title = ODD_TITLE if uid == ODD_TITLE_USER else rng.choice(TITLES)
        current[uid] = _passport(rows, uid, title, datetime(2026, 7, 1) + timedelta(hours=uid))

    edge_users = {NOVEMBER_EDGE[0]: Month(2026, 10), SEPTEMBER_EDGE[0]: Month(2026, 9)}
    holders = sorted(current)
    for month in MONTHS:
        travellers = rng.sample(holders, rng.randint(21, 27))
        for uid in travellers:
            if edge_users.get(uid) == month:
                continue  # the boundary visit below must be this user's only one this month
            # Most users stamp a few places; one in eight has a big month (a "+N more" cover).
            places_count = rng.randint(12, 18) if rng.random() < 0.125 else rng.randint(1, 6)
            favourites = rng.sample(rows.places, places_count)
            for _ in range(places_count + rng.randint(0, 4)):
                passport = older.get(uid) if uid in older and rng.random() < 0.3 else None
                rows.add_visit(
                    passport or current[uid],
                    rng.choice(favourites)["id"],
                    _random_instant(rng, month),
                )
    rows.add_visit(current[NOVEMBER_EDGE[0]], 12, NOVEMBER_EDGE[1])
    rows.add_visit(current[SEPTEMBER_EDGE[0]], 10, SEPTEMBER_EDGE[1])
    # The first Seoul instant of August: the lower bound is inclusive.
    rows.add_visit(current[1], 1, datetime(2026, 7, 31, 15, 0, tzinfo=UTC))
    return rows


def qualifying_users(rows: AppRows) -> dict[str, int]:
    """Users with at least one visit, per Seoul month key, from the rows in Python."""
    owner = {p["id"]: p["user_id"] for p in rows.passports}
    seoul_times = (v["visited_at"].astimezone(SEOUL) for v in rows.visits)
    months = {Month(t.year, t.month) for t in seoul_times}
    users: dict[str, set[int]] = defaultdict(set)
    for visit in rows.visits:
        for month in months:
            if month.contains(visit["visited_at"]):
                users[month.key].add(owner[visit["passport_id"]])
    return {key: len(users[key]) for key in sorted(users)}


def seed_demo(url: str, *, reset: bool = True) -> dict:
    """Write the demo dataset to the database at ``url``; drop the four tables first if reset.

    Without reset, existing rows are kept and only the demo rows that are missing (by id)
    are added. Returns the counts of the demo dataset and its qualifying users per month.
    """
    rows = build_dataset()
    inserted = write_app_rows(url, rows, reset=reset)
    counts = {name: len(getattr(rows, name)) for name in ("users", "passports", "places", "visits")}
    return {**counts, "inserted_rows": inserted, "qualifying": qualifying_users(rows)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m passport_pipeline.demo.seed",
        description="Fill the app database with the demo dataset (drops its four tables first).",
    )
    parser.add_argument(
        "--database-url",
        help="default: PASSPORT_DATABASE_URL, or the sqlite file under PASSPORT_HOME",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the existing tables and rows; only add missing demo rows",
    )
    args = parser.parse_args(argv)
    if args.database_url:
        url = args.database_url
    else:
        from passport_pipeline.settings import load_settings

        url = load_settings().database_url
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    summary = seed_demo(url, reset=not args.keep)
    where = parsed.render_as_string(hide_password=True)
    how = "kept existing rows" if args.keep else "dropped and recreated the tables"
    print(f"Seeded the demo app database at {where} ({how}).")
    print(
        f"Demo data: {summary['users']} users, {summary['passports']} passports, "
        f"{summary['places']} places, {summary['visits']} visits "
        f"({summary['inserted_rows']} rows written)."
    )
    per_month = ", ".join(f"{key}: {n}" for key, n in summary["qualifying"].items())
    print(f"Users with visits per month (Asia/Seoul): {per_month}.")
    return 0


def _passport(rows: AppRows, user_id: int, title: str, created: datetime) -> int:
    return rows.add_passport(len(rows.passports) + 1, user_id, title, created)


def _random_instant(rng: random.Random, month: Month) -> datetime:
    """A daytime instant in the month on a Seoul calendar, as aware UTC."""
    start, end = month.utc_bounds()
    days = (end - start).days
    local = month.seoul_start() + timedelta(
        days=rng.randrange(days), hours=rng.randint(8, 21), minutes=rng.randrange(60)
    )
    return local.astimezone(UTC)


if __name__ == "__main__":
    raise SystemExit(main())
