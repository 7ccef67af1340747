"""Monthly partitions on the Seoul calendar: keys ``YYYY-MM``, one per finished month."""

from dagster import MonthlyPartitionsDefinition

from passport_pipeline.domain.months import SEOUL

# The app's first month with check-ins; earlier months have nothing to draw.
FIRST_MONTH = "2024-01"

monthly_partitions = MonthlyPartitionsDefinition(
    start_date=FIRST_MONTH,
    fmt="%Y-%m",
    timezone=str(SEOUL),
    # A month becomes a partition (and is scheduled) at 02:00 on the 1st of the next month.
    hour_offset=2,
)
