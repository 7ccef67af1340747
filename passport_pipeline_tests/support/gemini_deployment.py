"""The Gemini fake and a deployment wired to it, as most end-to-end tests need them: one factory
instead of the same two fixtures in every module.

    from passport_pipeline_tests.support.gemini_deployment import (
        GEMINI_TEST_KEY, gemini_deployment, gemini_fake,
    )

    @pytest.fixture
    def gemini():
        yield from gemini_fake()

    @pytest.fixture
    def deployment(tmp_path, postgres_url, gemini):
        return gemini_deployment(tmp_path, postgres_url, USERS, gemini)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from passport_pipeline_tests.support.dataset import UserRow, write_dataset
from passport_pipeline_tests.support.deployment import Deployment
from passport_pipeline_tests.support.fake_gemini import FakeGemini

# The only key the fake accepts (a real key's shape: the redaction tests look for it).
GEMINI_TEST_KEY = "AIzaTEST-shared-fake-key-0001112223334"
# Retries of a failed step wait this long instead of the production default.
SHORT_RETRY_DELAY_S = "0.2"


def gemini_fake(**options) -> Iterator[FakeGemini]:
    """A running fake that accepts ``GEMINI_TEST_KEY`` only (``options``: ``latency_s``, …)."""
    with FakeGemini(api_keys=[GEMINI_TEST_KEY], **options) as server:
        yield server


def gemini_deployment(
    root: Path,
    database_url: str,
    users: list[UserRow],
    gemini: FakeGemini,
    instance_url: str | None = None,
    **variables: str,
) -> Deployment:
    """``users`` written to the app database, and a deployment on it that draws with the fake
    (step retries after ``SHORT_RETRY_DELAY_S`` unless ``variables`` say otherwise)."""
    write_dataset(database_url, users)
    variables.setdefault("PASSPORT_STEP_RETRY_DELAY_S", SHORT_RETRY_DELAY_S)
    return Deployment.with_gemini(
        root, database_url, gemini.base_url, GEMINI_TEST_KEY, instance_url, **variables
    )
