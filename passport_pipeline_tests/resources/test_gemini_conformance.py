"""The fake Gemini cannot drift from the real API: Google's own SDK (google-genai, a test-only
dependency) talks to it and parses what it answers, and our request bodies are checked
against the ones the SDK sends for the same call.

Checks on every body the fake can produce:
- the SDK, pointed at the fake over HTTP, gets its answer and reads it (as it reads Google's);
- the raw JSON validates against the SDK's types as they are (``extra="forbid"``, camelCase),
  so a field Google does not send, or one misnamed, fails here;
- a batch's Operation is proto3 JSON, which leaves default values out (``done: false``, a zero
  count), as recorded real traffic shows (a candidate's ``index: 0`` is sent: it has presence).
When Google's SDK changes shape, these tests say so.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from google import genai
from google.genai import batches as sdk_batches
from google.genai import errors, types

from passport_pipeline.domain import batch_protocol
from passport_pipeline.domain.gemini_protocol import build_generate_body, classify_error
from passport_pipeline.domain.images import inspect_image
from passport_pipeline_tests.support.fake_gemini import DEFAULT_MODEL, FakeGemini, Reply

KEY = "conformance-key"
PROMPT = "A passport cover for Mina, who visited Seoul in October 2026"


@pytest.fixture
def fake() -> Iterator[FakeGemini]:
    with FakeGemini(api_keys=[KEY]) as server:
        yield server


def sdk_client(fake: FakeGemini, api_key: str = KEY) -> genai.Client:
    """Google's client, pointed at the fake (kept in a name while used: a client that is
    garbage-collected closes its connections)."""
    options = types.HttpOptions(
        base_url=fake.base_url,
        api_version="v1beta",
        retry_options=types.HttpRetryOptions(attempts=1),  # count every call at the fake
    )
    return genai.Client(api_key=api_key, http_options=options)


def image_config(aspect_ratio: str = "3:4") -> types.GenerateContentConfig:
    return types.GenerateContentConfig(
        response_modalities=["TEXT", "IMAGE"],
        image_config=types.ImageConfig(aspect_ratio=aspect_ratio),
    )


def post(fake: FakeGemini, path: str, body: dict) -> requests.Response:
    return requests.post(
        f"{fake.base_url}/v1beta/{path}", json=body, headers={"x-goog-api-key": KEY}, timeout=30
    )


def defaults_in(value: Any, path: str = "") -> list[str]:
    """Where a proto3 JSON body holds a default value that Google would have left out."""
    if isinstance(value, dict):
        found = [f"{path}.{k}" for k, v in value.items() if v in (False, 0, "0", "", [], {})]
        return found + [p for k, v in value.items() for p in defaults_in(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in defaults_in(v, f"{path}[{i}]")]
    return []


# -- generateContent -------------------------------------------------------------------------


def test_our_request_body_is_the_one_the_sdk_sends(fake: FakeGemini) -> None:
    client = sdk_client(fake)
    client.models.generate_content(model=DEFAULT_MODEL, contents=PROMPT, config=image_config())
    [sdk_request] = fake.records
    assert sdk_request.body == build_generate_body(PROMPT, "3:4")


def test_the_sdk_reads_the_fakes_image_answer_over_gzip(fake: FakeGemini) -> None:
    client = sdk_client(fake)
    answer = client.models.generate_content(
        model=DEFAULT_MODEL, contents=PROMPT, config=image_config()
    )
    [record] = fake.records
    assert record.encoding == "gzip"  # the SDK offers gzip; Google's front end uses it
    text, image = answer.candidates[0].content.parts
    assert text.text and image.thought_signature
    info = inspect_image(image.inline_data.data)
    assert (info.mime_type, info.width, info.height) == ("image/png", 864, 1184)
    assert len(image.inline_data.data) > 1_000_000  # real covers are 1.3-2 MB
    assert answer.usage_metadata.candidates_token_count == 1290


GENERATE_ANSWERS = [
    Reply.ok(),
    Reply.no_image("IMAGE_SAFETY"),
    Reply.no_image("IMAGE_PROHIBITED_CONTENT"),
    Reply.blocked("PROHIBITED_CONTENT"),
    Reply.corrupt_image(),
    Reply.oversize(1000),
]


@pytest.mark.parametrize("reply", GENERATE_ANSWERS, ids=lambda r: f"{r.kind}-{r.reason}")
def test_every_200_answer_is_a_generate_content_response(fake: FakeGemini, reply: Reply) -> None:
    fake.script([reply])
    raw = post(fake, f"models/{DEFAULT_MODEL}:generateContent", build_generate_body(PROMPT, "3:4"))
    assert raw.status_code == 200 and raw.headers["Content-Encoding"] == "gzip"
    assert "Content-Length" not in raw.headers and raw.headers["Transfer-Encoding"] == "chunked"
    types.GenerateContentResponse.model_validate(raw.json())  # strict: no field Google lacks


@pytest.mark.parametrize("image_format", ["jpeg", "webp"])
def test_other_image_formats_are_valid_answers(fake: FakeGemini, image_format: str) -> None:
    fake.image_format = image_format
    client = sdk_client(fake)
    answer = client.models.generate_content(
        model=DEFAULT_MODEL, contents=PROMPT, config=image_config("9:16")
    )
    image = answer.candidates[0].content.parts[-1].inline_data
    info = inspect_image(image.data)
    assert info.mime_type == image.mime_type == f"image/{image_format}"
    assert (info.width, info.height) == (768, 1344)


ERRORS = [
    (Reply.error(400), 400, "INVALID_ARGUMENT"),
    (Reply.error(500), 500, "INTERNAL"),
    (Reply.error(503), 503, "UNAVAILABLE"),
    (Reply.error(504), 504, "DEADLINE_EXCEEDED"),
    (Reply.rate_limited("7s"), 429, "RESOURCE_EXHAUSTED"),
    (Reply.daily_quota("17s"), 429, "RESOURCE_EXHAUSTED"),
]


@pytest.mark.parametrize(("reply", "code", "status"), ERRORS, ids=[e[2] for e in ERRORS])
def test_every_error_body_is_read_by_the_sdk_as_googles(
    fake: FakeGemini, reply: Reply, code: int, status: str
) -> None:
    fake.script([reply])
    client = sdk_client(fake)
    with pytest.raises(errors.APIError) as raised:
        client.models.generate_content(model=DEFAULT_MODEL, contents=PROMPT, config=image_config())
    assert (raised.value.code, raised.value.status) == (code, status)
    assert raised.value.message


def test_a_per_day_429_lists_its_violations_help_and_retry_info_as_google_does(
    fake: FakeGemini,
) -> None:
    fake.script([Reply.daily_quota("17s")])
    raw = post(fake, f"models/{DEFAULT_MODEL}:generateContent", build_generate_body(PROMPT, "3:4"))
    details = raw.json()["error"]["details"]
    kinds = [detail["@type"].rsplit(".", 1)[-1] for detail in details]
    assert kinds == ["QuotaFailure", "Help", "RetryInfo"]
    windows = [v["quotaId"] for v in details[0]["violations"]]
    assert len(windows) == 2 and "PerDay" in windows[0] and "PerMinute" in windows[1]
    # Read through gzip, our client halts the run on it (it is not per-minute).
    verdict = classify_error(429, raw.json())
    assert verdict.reason == "DAILY_QUOTA_EXHAUSTED" and verdict.halts_run


def test_the_key_check_answers_as_google_does(fake: FakeGemini) -> None:
    client = sdk_client(fake, api_key="a-wrong-key")
    with pytest.raises(errors.ClientError) as raised:
        client.models.generate_content(model=DEFAULT_MODEL, contents=PROMPT, config=image_config())
    assert raised.value.code == 400 and "API key not valid" in raised.value.message


# -- the Batch API and the Files API ---------------------------------------------------------


def test_our_inline_batch_body_is_the_one_the_sdk_sends(fake: FakeGemini) -> None:
    request = types.InlinedRequest(
        contents=PROMPT, config=image_config(), metadata={"key": "user_7"}
    )
    client = sdk_client(fake)
    client.batches.create(
        model=DEFAULT_MODEL, src=[request], config={"display_name": "passport-covers-2026-10-x"}
    )
    ours = batch_protocol.inline_body(
        "passport-covers-2026-10-x", [("user_7", build_generate_body(PROMPT, "3:4"))]
    )
    sdk_body = fake.batches.create_bodies[0]
    # The SDK names the model inside each request too; Google takes it from the URL as well.
    for item in sdk_body["batch"]["inputConfig"]["requests"]["requests"]:
        item["request"].pop("model", None)
    assert sdk_body == ours


def test_the_sdk_follows_a_batch_from_create_to_inline_answers(fake: FakeGemini) -> None:
    fake.script([Reply.error(400, "Request contains an invalid argument.")], endpoint="batch",
                prompt_contains="Busan")  # fmt: skip
    client = sdk_client(fake)
    requests_ = [
        types.InlinedRequest(contents=text, config=image_config(), metadata={"key": key})
        for key, text in [("user_1", PROMPT), ("user_2", "A cover for a trip to Busan")]
    ]
    job = client.batches.create(model=DEFAULT_MODEL, src=requests_, config={"display_name": "d"})
    assert job.state == types.JobState.JOB_STATE_PENDING and job.display_name == "d"
    fake.batches.finish(job.name)
    done = client.batches.get(name=job.name)
    assert done.state == types.JobState.JOB_STATE_SUCCEEDED
    first, second = done.dest.inlined_responses
    assert first.metadata == {"key": "user_1"} and first.response.candidates
    assert second.error.code == 3 and second.response is None  # INVALID_ARGUMENT, by number
    ours = batch_protocol.parse_batch(fake.batches.operation(fake.batches.batches[job.name]))
    answers = list(batch_protocol.inline_answers(ours, ["user_1", "user_2"]))
    assert batch_protocol.interpret_answer(answers[1]).reason == "INVALID_ARGUMENT"


@pytest.mark.parametrize("moment", ["created", "running", "succeeded", "cancelled"])
def test_every_operation_is_a_batch_job_in_proto3_json(fake: FakeGemini, moment: str) -> None:
    created = post(fake, f"models/{DEFAULT_MODEL}:batchGenerateContent", batch_body()).json()
    name = created["name"]
    if moment == "running":
        fake.batches.run(name, answered=1)
    elif moment == "succeeded":
        fake.batches.finish(name)
    elif moment == "cancelled":
        post(fake, f"{name}:cancel", {})
    operation = requests.get(
        f"{fake.base_url}/v1beta/{name}", headers={"x-goog-api-key": KEY}, timeout=30
    ).json()
    job = types.BatchJob.model_validate(sdk_batches._BatchJob_from_mldev(operation))
    assert job.name == name and job.state.name.startswith("JOB_STATE_")
    # The Operation's own fields (the answers inside are GenerateContentResponses, read above).
    metadata = {k: v for k, v in operation["metadata"].items() if k != "output"}
    own = {k: v for k, v in operation.items() if k != "response"}
    assert defaults_in({**own, "metadata": metadata}) == []  # no `done: false`, no 0
    assert ".v1main." in operation["metadata"]["@type"]
    assert ("done" in operation) == (moment in ("succeeded", "cancelled"))


def test_batches_list_pages_as_the_sdk_expects(fake: FakeGemini) -> None:
    for _ in range(3):
        post(fake, f"models/{DEFAULT_MODEL}:batchGenerateContent", batch_body())
    client = sdk_client(fake)
    names = [job.name for job in client.batches.list(config={"page_size": 2})]
    assert names == ["batches/fake0003", "batches/fake0002", "batches/fake0001"]
    assert fake.batches.calls["list"] == 2


def test_a_results_file_is_lines_the_sdk_types_read(fake: FakeGemini) -> None:
    fake.script([Reply.error(503)], endpoint="batch", prompt_contains="second")
    start = requests.post(
        f"{fake.base_url}/upload/v1beta/files",
        json={"file": {"display_name": "input"}},
        headers={"x-goog-api-key": KEY, "X-Goog-Upload-Command": "start"},
        timeout=30,
    )
    lines = [
        json.dumps({"key": f"user_{n}", "request": build_generate_body(f"{n} {word}", "3:4")})
        for n, word in [(1, "first"), (2, "second")]
    ]
    uploaded = requests.post(
        start.headers["X-Goog-Upload-URL"],
        data="\n".join(lines).encode(),
        headers={"x-goog-api-key": KEY, "X-Goog-Upload-Command": "upload, finalize"},
        timeout=30,
    ).json()
    file = types.File.model_validate(uploaded["file"])  # strict
    assert file.name.startswith("files/") and file.state == types.FileState.ACTIVE
    body = {"batch": {"displayName": "f", "inputConfig": {"fileName": file.name}}}
    name = post(fake, f"models/{DEFAULT_MODEL}:batchGenerateContent", body).json()["name"]
    fake.batches.finish(name)
    client = sdk_client(fake)
    job = client.batches.get(name=name)
    download = requests.get(
        f"{fake.base_url}/download/v1beta/{job.dest.file_name}:download",
        params={"alt": "media"},
        headers={"x-goog-api-key": KEY},
        timeout=30,
    )
    assert download.headers["Content-Encoding"] == "gzip"
    first, second = (json.loads(line) for line in download.content.splitlines())
    types.GenerateContentResponse.model_validate(first["response"])
    assert types.JobError.model_validate(second["error"]).code == 14  # UNAVAILABLE
    assert set(first) == {"key", "response"} and set(second) == {"key", "error"}


def batch_body() -> dict:
    return batch_protocol.inline_body("d", [("user_1", build_generate_body(PROMPT, "3:4"))])


def test_the_fakes_image_is_real_base64_png(fake: FakeGemini) -> None:
    raw = post(fake, f"models/{DEFAULT_MODEL}:generateContent", build_generate_body(PROMPT, "1:1"))
    part = raw.json()["candidates"][0]["content"]["parts"][-1]
    data = base64.b64decode(part["inlineData"]["data"], validate=True)
    assert inspect_image(data).width == 1024
