"""Calendar months as the job sees them: keys ``YYYY-MM``, boundaries in Asia/Seoul."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

SEOUL = ZoneInfo("Asia/Seoul")
_MONTH_KEY = re.compile(r"^(\d{4})-(\d{2})$")


class InvalidMonthError(ValueError):
    """A month key that is not ``YYYY-MM`` with a month from 01 to 12."""


@dataclass(frozen=True, order=True)
class Month:
    year: int
    month: int

    @classmethod
    def parse(cls, key: str) -> Month:
        match = _MONTH_KEY.match(key.strip()) if isinstance(key, str) else None
        if not match:
            raise InvalidMonthError(
                f"month {key!r} is not a month key: expected YYYY-MM, for example 2026-10"
            )
        year, month = int(match.group(1)), int(match.group(2))
        if not 1 <= month <= 12:
            raise InvalidMonthError(
                f"month {key!r} is not a month key: the month must be 01 to 12, not {month:02d}"
            )
        if year < 1970:
            raise InvalidMonthError(f"month {key!r} is before 1970")
        return cls(year, month)

    @property
    def key(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    def next(self) -> Month:
        return Month(self.year + self.month // 12, self.month % 12 + 1)

    @classmethod
    def of(cls, instant: datetime) -> Month:
        """The month an aware instant falls in, on the Seoul calendar."""
        if instant.tzinfo is None:
            raise ValueError("a naive datetime has no place in a Seoul month; attach a timezone")
        local = instant.astimezone(SEOUL)
        return cls(local.year, local.month)

    def through(self, last: Month) -> list[Month]:
        """This month and every month after it up to ``last`` (empty when ``last`` is earlier)."""
        months, month = [], self
        while month <= last:
            months.append(month)
            month = month.next()
        return months

    def previous(self) -> Month:
        return Month(self.year - (self.month == 1), (self.month - 2) % 12 + 1)

    def seoul_start(self) -> datetime:
        """Midnight of the 1st in Seoul, as an aware datetime."""
        return datetime(self.year, self.month, 1, tzinfo=SEOUL)

    def utc_bounds(self) -> tuple[datetime, datetime]:
        """[start, end) of the month in Seoul, converted to aware UTC datetimes."""
        return (
            self.seoul_start().astimezone(UTC),
            self.next().seoul_start().astimezone(UTC),
        )

    def contains(self, instant: datetime) -> bool:
        """Whether an aware instant falls in this month on a Seoul calendar."""
        return Month.of(instant) == self

    def __str__(self) -> str:
        return self.key
