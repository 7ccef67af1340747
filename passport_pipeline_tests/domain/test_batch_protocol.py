"""The Batch API's shapes and readings (domain/batch_protocol.py), with Google's documented JSON."""

from __future__ import annotations

import base64
import json

import pytest

from passport_pipeline.domain import batch_protocol as protocol
from passport_pipeline.domain.batch_protocol import BatchAnswer
from passport_pipeline.domain.gemini_protocol import GeminiImage, Verdict, build_generate_body
from passport_pipeline_tests.support.google_wire import model_image

REQUESTS = [(protocol.user_key(u), build_generate_body(f"cover {u}", "3:4")) for u in (7, 12)]


def image_response() -> dict:
    data = base64.b64encode(model_image("png")).decode()
    part = {"inlineData": {"mimeType": "image/png", "data": data}}
    return {"candidates": [{"content": {"parts": [part]}, "finishReason": "STOP"}]}


def operation(state: str, output: dict | None = None, **extra) -> dict:
    stats = {"requestCount": "2", "successfulRequestCount": "1", "pendingRequestCount": "1"}
    metadata = {"name": "batches/abc", "state": state, "batchStats": stats}
    if output is not None:
        metadata["output"] = output
    return {"name": "batches/abc", "metadata": metadata, **extra}


def test_keys_tie_each_request_to_its_user():
    assert protocol.user_key(7) == "user_7" and protocol.key_user("user_7") == 7
    assert protocol.key_user("request-1") is None and protocol.key_user("user_x") is None


def test_inline_requests_carry_their_key_in_metadata():
    body = protocol.inline_body("passport-covers-2026-10", REQUESTS)
    batch = body["batch"]
    assert batch["displayName"] == "passport-covers-2026-10"
    inlined = batch["inputConfig"]["requests"]["requests"]
    assert [item["metadata"]["key"] for item in inlined] == ["user_7", "user_12"]
    assert inlined[0]["request"]["contents"][0]["parts"][0]["text"] == "cover 7"
    assert protocol.fits_inline(body) and not protocol.fits_inline(body, limit_bytes=100)
    # Ten covers' answers (~2 MB each) would not come back inline under 20 MB: a file.
    many = protocol.inline_body("m", REQUESTS * 5)
    assert not protocol.fits_inline(many) and protocol.fits_inline(many, 30_000_000)


def test_a_file_batch_names_the_uploaded_jsonl_whose_lines_are_key_and_request():
    lines = protocol.jsonl(REQUESTS).decode().splitlines()
    assert [json.loads(line)["key"] for line in lines] == ["user_7", "user_12"]
    assert json.loads(lines[1])["request"] == REQUESTS[1][1]
    body = protocol.file_body("m", "files/xyz")
    assert body == {"batch": {"displayName": "m", "inputConfig": {"fileName": "files/xyz"}}}


@pytest.mark.parametrize("prefix", ["BATCH_STATE_", "JOB_STATE_"])
def test_a_pending_batch_reads_its_state_and_counts(prefix):
    job = protocol.parse_batch(operation(prefix + "RUNNING"))
    assert (job.name, job.state, job.is_open) == ("batches/abc", "RUNNING", True)
    assert (job.request_count, job.succeeded, job.failed, job.pending) == (2, 1, 0, 1)
    assert job.progress() == "RUNNING: 1 of 2 answered (1 pending)"


def test_a_succeeded_batch_gives_inline_answers_by_key_or_else_by_order():
    inlined = [
        {"response": image_response(), "metadata": {"key": "user_12"}},
        {"error": {"code": 400, "message": "bad", "status": "INVALID_ARGUMENT"}},
    ]
    job = protocol.parse_batch(
        operation("BATCH_STATE_SUCCEEDED", {"inlinedResponses": {"inlinedResponses": inlined}})
    )
    assert job.state == protocol.SUCCEEDED and not job.is_open
    answers = list(protocol.inline_answers(job, ["user_7", "user_12"]))
    assert [a.key for a in answers] == ["user_12", "user_12"]  # the second lost its key
    assert answers[1].error["status"] == "INVALID_ARGUMENT" and answers[1].response is None


def test_the_output_may_come_in_the_operations_response_as_a_results_file():
    payload = operation("BATCH_STATE_SUCCEEDED", None, response={"responsesFile": "files/r1"})
    job = protocol.parse_batch(payload)
    assert job.responses_file == "files/r1" and job.inlined is None
    lines = [
        json.dumps({"key": "user_7", "response": image_response()}).encode(),
        b"",
        b"not json",
        json.dumps({"key": "user_12", "error": {"code": 13, "status": "INTERNAL"}}).encode(),
    ]
    answers = list(protocol.file_answers(lines, ["user_7", "x", "user_12"]))
    assert [(a.key, a.response is not None, a.error) for a in answers] == [
        ("user_7", True, None),
        ("user_12", False, {"code": 13, "status": "INTERNAL"}),
    ]


def test_a_cancelled_operation_says_so():
    payload = operation("BATCH_STATE_CANCELLED", error={"code": 1, "message": "CANCELLED"})
    job = protocol.parse_batch(payload)
    assert job.state == protocol.CANCELLED and job.error == "CANCELLED"


def test_an_answer_is_read_like_a_direct_answer():
    image = protocol.interpret_answer(BatchAnswer("user_7", response=image_response()))
    assert isinstance(image, GeminiImage) and image.info.mime_type == "image/png"
    refused = protocol.interpret_answer(
        BatchAnswer("user_7", response={"candidates": [{"finishReason": "IMAGE_SAFETY"}]})
    )
    assert isinstance(refused, Verdict) and refused.reason == "IMAGE_SAFETY"
    empty = protocol.interpret_answer(BatchAnswer("user_7"))
    assert isinstance(empty, Verdict) and empty.reason == "BAD_RESPONSE"


@pytest.mark.parametrize(
    ("state", "todo"),
    [
        ("EXPIRED", "direct: true"),
        ("FAILED", "check the model and the key"),
        ("CANCELLED", "launch the month again"),
    ],
)
def test_a_batch_without_answers_fails_the_month_saying_what_to_do(state, todo):
    job = protocol.parse_batch(operation("BATCH_STATE_" + state))
    message = protocol.stopped_message(job, "2026-10")
    assert message.startswith(f"2026-10: Gemini batch batches/abc ended {state}")
    assert todo in message


@pytest.mark.parametrize(
    ("status", "name"),
    [
        # google.rpc.Status as a batch's per-request error really is: an integer gRPC code.
        ({"code": 3, "message": "Request contains an invalid argument."}, "INVALID_ARGUMENT"),
        ({"code": 1, "message": "The operation was cancelled."}, "CANCELLED"),
        ({"code": 8, "message": "Resource has been exhausted."}, "RESOURCE_EXHAUSTED"),
        ({"code": 13, "message": "Internal error."}, "INTERNAL"),
        ({"code": 99, "message": "From the future."}, "CODE_99"),
        # The HTTP error shape (a status string) is read too, should Google ever send it.
        ({"code": 400, "message": "Bad.", "status": "INVALID_ARGUMENT"}, "INVALID_ARGUMENT"),
    ],
)
def test_a_per_request_error_names_its_grpc_code(status: dict, name: str) -> None:
    failed = protocol.interpret_answer(BatchAnswer("user_7", error=status))
    assert isinstance(failed, Verdict) and not failed.transient and failed.reason == name
    assert f"({name}: {status['message']})" in failed.message
