from datetime import UTC, datetime, timedelta, timezone

import pytest

from passport_pipeline.domain.months import InvalidMonthError, Month


@pytest.mark.parametrize(
    ("key", "expected"),
    [("2026-10", Month(2026, 10)), ("2024-01", Month(2024, 1)), (" 2026-12 ", Month(2026, 12))],
)
def test_parse_accepts_month_keys(key, expected):
    assert Month.parse(key) == expected
    assert expected.key == key.strip()


@pytest.mark.parametrize(
    ("key", "names"),
    [
        ("2026-13", "01 to 12"),
        ("2026-00", "01 to 12"),
        ("2026-1", "YYYY-MM"),
        ("Oct 2026", "YYYY-MM"),
        ("", "YYYY-MM"),
        ("2026-10-01", "YYYY-MM"),
    ],
)
def test_parse_rejects_bad_keys_naming_the_problem(key, names):
    with pytest.raises(InvalidMonthError, match=names):
        Month.parse(key)


@pytest.mark.parametrize(
    ("month", "following", "preceding"),
    [
        (Month(2026, 12), Month(2027, 1), Month(2026, 11)),
        (Month(2026, 1), Month(2026, 2), Month(2025, 12)),
    ],
)
def test_next_and_previous_cross_years(month, following, preceding):
    assert month.next() == following
    assert month.previous() == preceding


def test_utc_bounds_are_seoul_midnights():
    start, end = Month(2026, 10).utc_bounds()
    assert start == datetime(2026, 9, 30, 15, 0, tzinfo=UTC)
    assert end == datetime(2026, 10, 31, 15, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("instant", "month_key"),
    [
        (datetime(2026, 10, 31, 15, 30, tzinfo=UTC), "2026-11"),  # 00:30 KST on 1 November
        (datetime(2026, 10, 31, 14, 59, tzinfo=UTC), "2026-10"),
        (datetime(2026, 9, 30, 15, 0, tzinfo=UTC), "2026-10"),
        (datetime(2026, 9, 30, 14, 59, 59, tzinfo=UTC), "2026-09"),
        (datetime(2026, 10, 1, 0, 30, tzinfo=timezone(timedelta(hours=9))), "2026-10"),
    ],
)
def test_contains_uses_the_seoul_calendar(instant, month_key):
    assert Month.parse(month_key).contains(instant)
    assert not Month.parse(month_key).next().contains(instant)


def test_contains_refuses_naive_datetimes():
    with pytest.raises(ValueError, match="naive"):
        Month(2026, 10).contains(datetime(2026, 10, 5))


@pytest.mark.parametrize(
    ("instant", "month"),
    [
        (datetime(2026, 10, 31, 15, 0, tzinfo=UTC), Month(2026, 11)),  # 00:00 KST, 1 Nov
        (datetime(2026, 10, 31, 14, 59, tzinfo=UTC), Month(2026, 10)),
        (datetime(2026, 12, 31, 15, 0, tzinfo=UTC), Month(2027, 1)),
    ],
)
def test_of_places_an_instant_on_the_seoul_calendar(instant, month):
    assert Month.of(instant) == month


@pytest.mark.parametrize(
    ("first", "last", "keys"),
    [
        ("2026-11", "2027-02", ["2026-11", "2026-12", "2027-01", "2027-02"]),
        ("2026-10", "2026-10", ["2026-10"]),
        ("2026-10", "2026-09", []),
    ],
)
def test_through_lists_the_months_in_order(first, last, keys):
    assert [m.key for m in Month.parse(first).through(Month.parse(last))] == keys
