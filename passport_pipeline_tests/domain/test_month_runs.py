"""Which runs are a month's, which are over, and state a re-execution must not inherit."""

from __future__ import annotations

import pytest

from passport_pipeline.domain.month_runs import (
    FINISHED,
    REFUSED_TAG,
    is_finished,
    is_month_run,
    refused_tag,
    runs_the_covers,
)
from passport_pipeline.domain.run_state import own_state, own_state_tag


@pytest.mark.parametrize(
    ("job_name", "selection", "covers"),
    [
        ("monthly_passport_covers", None, True),
        ("__ASSET_JOB", ["passport_covers"], True),  # the asset's page
        ("__ASSET_JOB", None, True),  # an implicit asset job of this location
        ("__ephemeral_asset_job__", ["passport_covers"], True),  # materialize()
        ("__ASSET_JOB", ["other_asset"], False),
        ("some_other_job", None, False),
        (None, None, False),
    ],
)
def test_a_run_of_the_covers_is_known_from_any_entry_point(job_name, selection, covers):
    assert runs_the_covers(job_name, selection) is covers


@pytest.mark.parametrize(
    "refused",
    [refused_tag("r1", "r0"), {REFUSED_TAG: "r1 deferred to r0"}],  # and as tagged before
)
def test_a_refused_run_is_not_the_months_but_its_re_execution_is(refused):
    assert not is_month_run("r1", "__ASSET_JOB", ["passport_covers"], refused)
    # A re-execution copies the parent's tags; the refusal names the parent, not it.
    assert is_month_run("r2", "__ASSET_JOB", ["passport_covers"], refused)


@pytest.mark.parametrize("status", ["SUCCESS", "failure", "Canceled"])
def test_finished_statuses_are_one_set_in_any_case(status):
    assert is_finished(status)
    assert status.upper() in FINISHED


@pytest.mark.parametrize("status", ["QUEUED", "NOT_STARTED", "STARTING", "started", "CANCELING"])
def test_a_run_not_over_is_not_finished(status):
    assert not is_finished(status)


def test_run_state_is_read_only_by_the_run_that_wrote_it():
    tags = own_state_tag("passport/halted", "parent", {"reason": "bad key"})
    assert own_state(tags, "passport/halted", "parent") == {"reason": "bad key", "run_id": "parent"}
    assert own_state(tags, "passport/halted", "re-execution") is None


@pytest.mark.parametrize("raw", ["{not json", "[1, 2]", '"text"'])
def test_malformed_run_state_is_none(raw):
    assert own_state({"passport/halted": raw}, "passport/halted", "r1") is None
