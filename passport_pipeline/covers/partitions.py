"""Monthly partitions on the Seoul calendar: keys ``YYYY-MM``, one per finished month, from the
first month that matters (``PASSPORT_FIRST_MONTH``)."""

from dagster import MonthlyPartitionsDefinition

from passport_pipeline.domain.months import SEOUL

# The app's first month with check-ins; earlier months have nothing to draw.
DEFAULT_FIRST_MONTH = "2024-01"


def monthly_partitions(first_month: str = DEFAULT_FIRST_MONTH) -> MonthlyPartitionsDefinition:
    """The months from ``first_month`` (YYYY-MM) to the last finished one."""
    return MonthlyPartitionsDefinition(
        start_date=first_month,
        fmt="%Y-%m",
        timezone=str(SEOUL),
        # A month becomes a partition (and is scheduled) at 02:00 on the 1st of the next month.
        hour_offset=2,
    )
