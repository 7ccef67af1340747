from passport_pipeline.cli.reexecute import reexecution_tags
from passport_pipeline_tests.support.dataset import UserRow, cover_urls, october, write_dataset
from passport_pipeline_tests.support.deployment import BIN, Deployment


def test_a_re_execution_keeps_the_month_and_our_tags_and_joins_the_run_group():
    parent = {
        "dagster/partition": "2026-10",
        "passport/lane": "covers",
        "passport/total": "12",
        "dagster/backfill": "abcd",
        "dagster/failure_reason": "STEP_FAILURE",
        "dagster/retry_number": "1",
    }
    tags = reexecution_tags(parent, "run-2", "run-1")
    assert tags == {
        "dagster/partition": "2026-10",
        "passport/lane": "covers",
        "passport/total": "12",
        "dagster/parent_run_id": "run-2",
        "dagster/root_run_id": "run-1",
        "dagster/is_resume_retry": "true",
    }


def test_a_month_launched_from_the_asset_page_is_re_executed_from_the_shell(tmp_path, sqlite_url):
    """``dagster asset materialize`` (as the asset's page) runs ``__ASSET_JOB``; its failed run
    is the month's, and ``cli.reexecute`` finishes it."""
    write_dataset(sqlite_url, [UserRow(1, visits=[(1, october(3))])])
    deployment = Deployment.create(
        tmp_path, PASSPORT_DATABASE_URL=sqlite_url, PASSPORT_STEP_RETRY_DELAY_S="0.05"
    )
    # A file where the month's folder of covers must go: the user's upload fails.
    blocker = tmp_path / "home" / "images" / "covers" / "2026-10"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("not a folder")
    materialize = [
        str(BIN / "dagster"),
        "asset",
        "materialize",
        "-m",
        "passport_pipeline.definitions",
    ]
    failed = deployment.run(*materialize, "--select", "passport_covers", "--partition", "2026-10")
    assert failed.returncode != 0
    [parent] = deployment.runs()
    assert (parent.job_name, parent.status.value) == ("__ASSET_JOB", "FAILURE")

    blocker.unlink()
    again = deployment.reexecute(parent.run_id)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert cover_urls(sqlite_url)[1]
