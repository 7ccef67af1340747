"""What a month's run does around its steps (the executors' ``RunDuties``, given to them by
``definitions.py``): one run of a month at a time, its progress on the run page, and the users
whose step never started recorded when it stops part-way."""

from __future__ import annotations

from dagster import DagsterInstance

from passport_pipeline.covers.one_run import claim_month
from passport_pipeline.covers.progress import publish_progress
from passport_pipeline.covers.unstarted_steps import record_unstarted_user_steps


class MonthRunDuties:
    """The covers' ``execution.run_duties.RunDuties``."""

    def claim(self, instance: DagsterInstance, run_id: str) -> None:
        """Go ahead only as the month's oldest unfinished run (``one_run``); a re-execution runs
        no ``month_users``, so the claim is made here, before any step."""
        claim_month(instance, run_id)

    def publish_progress(self, instance: DagsterInstance, run_id: str) -> str | None:
        return publish_progress(instance, run_id)

    def record_stop(self, instance: DagsterInstance, run_id: str) -> None:
        record_unstarted_user_steps(instance, run_id)
