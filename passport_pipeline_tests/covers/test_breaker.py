"""A model that answers 200 with garbage, run as operators run a month (`dagster job execute`,
the default executor and pool of 50, PostgreSQL, Gemini protocol): each user is asked at most
twice, the month starts narrow (4 calls in flight, one more per usable answer: none come), and
a streak of the same garbage halts the run. Paid calls are counted at the fake server."""

from __future__ import annotations

import pytest
from dagster import DagsterEventType

from passport_pipeline.domain.breaker import HALT_AFTER_UNUSABLE
from passport_pipeline_tests.support.dataset import UserRow, cover_urls, october, write_dataset
from passport_pipeline_tests.support.deployment import Deployment
from passport_pipeline_tests.support.fake_gemini import FakeGemini, Reply

# The app database of every test here is on the PostgreSQL server.
pytestmark = [pytest.mark.postgres, pytest.mark.e2e]
API_KEY = "AIzaTEST-garbage-key-000111222333"
# Enough users that a month without the narrow start would pay far more than the bound below.
USERS = 40
START_WIDTH = 4  # GEMINI_START_WIDTH's default


# One kind of garbage here (a whole month is the slow part); the client's tests cover the others
# (invalid base64, truncated JSON, HTML, an oversize image) at 2 paid calls per user each.
@pytest.mark.parametrize(("garbage", "reason"), [(Reply.corrupt_image(), "INVALID_IMAGE")])
def test_a_model_that_only_answers_garbage_halts_the_month(tmp_path, postgres_url, garbage, reason):
    write_dataset(
        postgres_url,
        [
            UserRow(i, title=f"Trip {i}", visits=[(1 + i % 5, october(9))])
            for i in range(1, USERS + 1)
        ],
    )
    with FakeGemini(api_keys=[API_KEY]) as gemini:
        gemini.script([garbage])
        deployment = Deployment.with_gemini(
            tmp_path,
            postgres_url,
            gemini.base_url,
            API_KEY,
            PASSPORT_STEP_RETRY_DELAY_S="0.2",
        )
        completed = deployment.execute_month("2026-10")
        paid = gemini.generate_requests
        asked = {r.prompt for r in gemini.records if r.endpoint == "generate"}
    assert completed.returncode != 0
    # 2 calls per user asked: the streak's 10 and the 3 others in the width when the tenth
    # ended. A user keeps its place until its answers are counted, so no one takes the tenth's
    # place before the halt: at most 2 * (HALT_AFTER_UNUSABLE + START_WIDTH - 1) = 26 at the
    # default width of 50 (without the narrow start, all 40 users could be asked twice: 80).
    assert paid <= 2 * len(asked) <= 2 * (HALT_AFTER_UNUSABLE + START_WIDTH - 1) == 26
    assert len(asked) >= HALT_AFTER_UNUSABLE
    assert not any(cover_urls(postgres_url).values())
    [run] = deployment.runs()
    assert deployment.step_keys(run.run_id, DagsterEventType.STEP_UP_FOR_RETRY) == []
    with deployment.instance() as instance:
        messages = [
            entry.dagster_event.step_failure_data.error.message
            for entry in instance.all_logs(run.run_id, of_type=DagsterEventType.STEP_FAILURE)
        ]
    assert len(messages) == USERS  # every user ends as a named failure
    assert all(reason in m for m in messages)
    halted = [m for m in messages if "this run was halted" in m]
    # Users never asked, and users in the width whose retry was not sent: halted.
    assert USERS - len(asked) <= len(halted) <= USERS - HALT_AFTER_UNUSABLE
    assert all(f"last {HALT_AFTER_UNUSABLE} answers that ended a user" in m for m in halted)
