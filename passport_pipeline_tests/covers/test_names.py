import pytest
from dagster import DagsterRun

from passport_pipeline.covers.names import (
    COVERS_ASSET,
    JOB_NAME,
    is_covers_run,
    user_of_step,
    user_step_key,
)


@pytest.mark.parametrize(
    "step_key, user",
    [
        ("passport_covers.generate_cover[user_7]", "user_7"),
        ("generate_cover[user_12]", "user_12"),  # a run from before the month was an asset
        ("passport_covers.month_users", None),
        ("passport_covers.record_month", None),
        ("passport_covers.generate_cover[?]", "?"),
        ("other_graph.generate_cover[user_7]", None),
        (None, None),
    ],
)
def test_only_a_users_cover_step_names_a_user(step_key, user):
    assert user_of_step(step_key) == user


def test_a_user_step_key_reads_back_as_its_user():
    assert user_step_key("user_3") == "passport_covers.generate_cover[user_3]"
    assert user_of_step(user_step_key("user_3")) == "user_3"


@pytest.mark.parametrize(
    "job_name, selection, covers",
    [
        (JOB_NAME, None, True),
        ("__ASSET_JOB", None, True),
        ("__ephemeral_asset_job__", [COVERS_ASSET], True),
        ("some_other_job", None, False),
    ],
)
def test_which_runs_are_runs_of_the_covers(job_name, selection, covers):
    from dagster import AssetKey

    keys = frozenset(AssetKey(key) for key in selection) if selection else None
    assert is_covers_run(DagsterRun(job_name=job_name, asset_selection=keys)) is covers
