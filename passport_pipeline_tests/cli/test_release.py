"""A run of a month that never started (QUEUED with no daemon, or NOT_STARTED because the
process that created it died) holds its month: a later launch names it and how to clear it, and
``cli.release`` clears it."""

from __future__ import annotations

import pytest
from dagster import DagsterInstance, DagsterRunStatus

from passport_pipeline.cli import release
from passport_pipeline.covers.names import JOB_NAME, PARTITION_TAG
from passport_pipeline.covers.one_run import MonthAlreadyRunning, claim_month
from passport_pipeline.definitions import defs


def test_a_never_started_run_is_named_with_how_to_clear_it_and_release_frees_the_month(
    tmp_path, monkeypatch, capsys
):
    # NOT_STARTED: the `dagster job execute` that created it died before starting it. (A QUEUED
    # run takes the same branch, domain.month_runs.NOT_BEGUN; queuing one needs a code server.)
    (tmp_path / "dagster.yaml").write_text("")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    job = defs.resolve_job_def(JOB_NAME)
    month = {PARTITION_TAG: "2026-10"}
    with DagsterInstance.get() as instance:
        stuck = instance.create_run_for_job(job, tags=month, run_config={})
        assert stuck.status is DagsterRunStatus.NOT_STARTED
        launch = instance.create_run_for_job(job, tags=month, run_config={})

        with pytest.raises(MonthAlreadyRunning) as refused:
            claim_month(instance, launch.run_id)
        said = str(refused.value)
        assert f"run {stuck.run_id} of 2026-10 was launched before this run" in said
        assert f"Run {stuck.run_id} has not started" in said
        assert f"python -m passport_pipeline.cli.release {stuck.run_id}" in said

        assert release.main([stuck.run_id]) == 0
        assert "marked canceled" in capsys.readouterr().out
        assert instance.get_run_by_id(stuck.run_id).status is DagsterRunStatus.CANCELED
        # The month is free: the next launch goes ahead.
        again = instance.create_run_for_job(job, tags=month, run_config={})
        claim_month(instance, again.run_id)
