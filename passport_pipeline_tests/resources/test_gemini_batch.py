"""The Batch API client over HTTP against the fake Gemini: retries, and what is never sent twice."""

from __future__ import annotations

import pytest

from passport_pipeline.domain.gemini_protocol import build_generate_body
from passport_pipeline.resources.gemini_batch import GeminiBatchImageModel
from passport_pipeline.resources.image_model import (
    PermanentImageModelError,
    TransientImageModelError,
)
from passport_pipeline_tests.support.fake_gemini import FakeGemini

REQUESTS = [("user_1", build_generate_body("a cover of Seoul", "3:4"))]


@pytest.fixture
def gemini():
    with FakeGemini(api_keys=["batch-key"]) as server:
        yield server


def model(server: FakeGemini, **fields) -> GeminiBatchImageModel:
    fields = {"api_key": "batch-key", "initial_backoff_s": 0.01, **fields}
    return GeminiBatchImageModel(base_url=server.base_url, **fields)


def test_a_busy_batch_api_is_asked_again_and_one_batch_is_created(gemini):
    gemini.batches.fail_next(503, 429)
    job = model(gemini).submit("m", REQUESTS)
    assert gemini.batches.calls["create"] == 1 and gemini.batches.calls["fault"] == 2
    assert job.state == "PENDING" and job.request_count == 1
    gemini.batches.fail_next(500, 500, 500)
    with pytest.raises(TransientImageModelError, match="500"):
        model(gemini).get(job.name)  # three attempts, then the caller (the sensor) waits a tick
    assert model(gemini).get(job.name).is_open


def test_a_rejected_key_is_permanent_and_never_named(gemini):
    client = model(gemini, api_key="wrong-key-AIza123")
    with pytest.raises(PermanentImageModelError) as raised:
        client.submit("m", REQUESTS)
    assert raised.value.halts_run and "API_KEY_INVALID" in str(raised.value)
    assert "wrong-key-AIza123" not in str(raised.value)
    assert gemini.batches.calls["create"] == 0


def test_answers_of_a_file_batch_are_read_from_the_results_file(gemini):
    client = model(gemini, inline_limit_bytes=10)
    job = client.submit("m", REQUESTS)
    gemini.batches.finish(job.name)
    done = client.get(job.name)
    assert done.state == "SUCCEEDED" and done.responses_file
    [answer] = client.answers(done, ["user_1"])
    image = client.image_from(answer)
    assert image.metadata["path"] == "batch" and image.metadata["estimated_cost_usd"] == 0.0195
    assert image.info.mime_type == "image/png"
