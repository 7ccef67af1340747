from passport_pipeline.cli.reexecute import reexecution_tags


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
