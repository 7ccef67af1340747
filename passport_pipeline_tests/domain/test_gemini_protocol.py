"""Gemini's protocol: request body, 200 answers and the verdict on each documented error."""

from __future__ import annotations

import base64

import pytest
import requests
import urllib3

from passport_pipeline.domain.gemini_protocol import (
    GeminiImage,
    Verdict,
    answer_too_large,
    build_generate_body,
    classify_error,
    classify_transport_error,
    deadline_exceeded,
    interpret_generate_answer,
    max_answer_bytes,
    parse_duration,
    worth_another_try,
)
from passport_pipeline_tests.support.fake_gemini import (
    KEY_INVALID,
    Reply,
    google_error,
)
from passport_pipeline_tests.support.google_wire import model_image

RPC = "type.googleapis.com/google.rpc."


def _answer(parts: list[dict], **extra: object) -> dict:
    body = {"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP"}]}
    return {**body, **extra}


def _inline(image_format: str = "png", mime: str | None = None) -> dict:
    data = base64.b64encode(model_image(image_format)).decode()
    return {"inlineData": {"mimeType": mime or f"image/{image_format}", "data": data}}


def test_request_body_asks_for_an_image_with_the_aspect_ratio() -> None:
    assert build_generate_body("a cover for Mina", "3:4") == {
        "contents": [{"role": "user", "parts": [{"text": "a cover for Mina"}]}],
        "generationConfig": {
            "responseModalities": ["TEXT", "IMAGE"],
            "imageConfig": {"aspectRatio": "3:4"},
        },
    }


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("37s", 37.0),
        ("1.5s", 1.5),
        ("0s", 0.0),
        ({"seconds": 2, "nanos": 500_000_000}, 2.5),
        ("soon", None),
        (None, None),
        (12, None),
    ],
)
def test_parse_duration(value: object, seconds: float | None) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    ("image_format", "declared", "mime", "extension"),
    [
        ("png", "image/png", "image/png", "png"),
        ("jpeg", "image/jpeg", "image/jpeg", "jpg"),
        ("webp", "image/webp", "image/webp", "webp"),
        # What the bytes are wins over what the answer says they are.
        ("jpeg", "image/png", "image/jpeg", "jpg"),
    ],
)
def test_image_after_text_is_found_and_identified(
    image_format: str, declared: str, mime: str, extension: str
) -> None:
    body = _answer(
        [{"text": "Here is your cover."}, _inline(image_format, declared)],
        usageMetadata={
            "promptTokenCount": 40,
            "candidatesTokenCount": 1290,
            "totalTokenCount": 1330,
        },
        modelVersion="gemini-2.5-flash-image-001",
    )
    image = interpret_generate_answer(body)
    assert isinstance(image, GeminiImage)
    assert (image.info.mime_type, image.info.extension) == (mime, extension)
    assert (image.info.width, image.info.height) == (864, 1184)  # the model's 3:4
    assert image.data == model_image(image_format)
    assert (image.prompt_tokens, image.output_tokens, image.total_tokens) == (40, 1290, 1330)
    assert image.model_version == "gemini-2.5-flash-image-001"
    assert image.text == "Here is your cover."


def test_missing_usage_and_version_are_none_not_errors() -> None:
    image = interpret_generate_answer(_answer([_inline()]))
    assert isinstance(image, GeminiImage)
    assert (image.prompt_tokens, image.total_tokens, image.model_version) == (None, None, None)


def test_an_inline_part_that_is_not_an_image_is_skipped() -> None:
    text_file = {"inlineData": {"mimeType": "text/plain", "data": "aGVsbG8="}}
    image = interpret_generate_answer(_answer([text_file, _inline("webp")]))
    assert isinstance(image, GeminiImage) and image.info.mime_type == "image/webp"


@pytest.mark.parametrize(
    ("body", "reason", "named"),
    [
        ({"candidates": [{"finishReason": "IMAGE_SAFETY"}]}, "IMAGE_SAFETY", "finishReason"),
        (
            {"candidates": [{"finishReason": "IMAGE_PROHIBITED_CONTENT", "content": {}}]},
            "IMAGE_PROHIBITED_CONTENT",
            "IMAGE_PROHIBITED_CONTENT",
        ),
        ({"candidates": [{"finishReason": "NO_IMAGE"}]}, "NO_IMAGE", "finishReason NO_IMAGE"),
        ({"candidates": [{"finishReason": "SAFETY"}]}, "SAFETY", "finishReason SAFETY"),
        (
            {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}},
            "PROHIBITED_CONTENT",
            "promptFeedback.blockReason PROHIBITED_CONTENT",
        ),
        (_answer([{"text": "I can only describe it."}]), "NO_IMAGE", "I can only describe it."),
        ({"candidates": []}, "NO_IMAGE", "no image part"),
    ],
)
def test_no_image_is_permanent_and_says_why(body: dict, reason: str, named: str) -> None:
    verdict = interpret_generate_answer(body)
    assert isinstance(verdict, Verdict)
    assert (verdict.transient, verdict.halts_run, verdict.reason) == (False, False, reason)
    assert verdict.message.startswith("Gemini returned no image: ")
    assert named in verdict.message


@pytest.mark.parametrize(
    "data",
    [
        "@@not base64@@",
        base64.b64encode(b"not an image at all").decode(),
        base64.b64encode(model_image("png")[:200]).decode(),
        "",
    ],
)
def test_image_that_does_not_decode_is_unusable(data: str) -> None:
    verdict = interpret_generate_answer(
        _answer([{"inlineData": {"mimeType": "image/png", "data": data}}])
    )
    assert isinstance(verdict, Verdict)
    assert (verdict.unusable, verdict.transient, verdict.reason) == (True, False, "INVALID_IMAGE")


@pytest.mark.parametrize("body", [None, "<html>", ["a"]])
def test_a_200_that_is_not_json_is_unusable(body: object) -> None:
    verdict = interpret_generate_answer(body)
    assert isinstance(verdict, Verdict)
    assert (verdict.unusable, verdict.reason) == (True, "BAD_RESPONSE")


def test_an_image_over_the_limit_is_refused_before_it_is_decoded() -> None:
    size = len(model_image("png"))
    image = interpret_generate_answer(_answer([_inline()]), max_image_bytes=size)
    assert isinstance(image, GeminiImage)
    # Base64 that does not even decode: refused by its length alone.
    huge = {"inlineData": {"mimeType": "image/png", "data": "@" * 4000}}
    for part, limit in ((_inline(), size - 1), (huge, 2000)):
        verdict = interpret_generate_answer(_answer([part]), max_image_bytes=limit)
        assert isinstance(verdict, Verdict)
        assert (verdict.reason, verdict.unusable) == ("IMAGE_TOO_LARGE", True)
        assert f"more than the {limit:,} a cover may have" in verdict.message


def test_the_answer_limit_leaves_room_for_the_base64_and_the_json() -> None:
    assert max_answer_bytes(20_000_000) == 20_000_000 * 4 // 3 + 1_000_000
    verdict = answer_too_large(30_000_000, max_answer_bytes(20_000_000), declared=True)
    assert (verdict.reason, verdict.unusable, verdict.transient) == ("IMAGE_TOO_LARGE", True, False)


UNUSABLE = Verdict(False, "INVALID_IMAGE", "bad bytes", unusable=True)
BUSY = Verdict(True, "UNAVAILABLE", "503")
REFUSED = Verdict(False, "IMAGE_SAFETY", "refused")


@pytest.mark.parametrize(
    ("verdict", "unusable_answers", "again"),
    [
        (UNUSABLE, 1, True),  # the first unusable answer is asked again
        (UNUSABLE, 2, False),  # the second is not
        (BUSY, 0, True),
        (BUSY, 1, True),  # an outage after one unusable answer is still retried
        (BUSY, 2, False),
        (REFUSED, 0, False),
        (REFUSED, 1, False),
    ],
)
def test_an_unusable_answer_is_asked_again_once(
    verdict: Verdict, unusable_answers: int, again: bool
) -> None:
    assert worth_another_try(verdict, unusable_answers) is again


def test_deadline_verdicts_are_transient_timeouts() -> None:
    cut = deadline_exceeded(180, 1234)
    assert (cut.transient, cut.reason) == (True, "TIMEOUT")
    assert "within the 180 s deadline (1,234 bytes of it had arrived)" in cut.message
    silent = classify_transport_error(requests.ReadTimeout("slow"), deadline_s=0.5)
    assert "0.5 s deadline" in silent.message and silent.transient


DAY = {"quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier"}
DAY_METRIC = {"quotaMetric": "generativelanguage.googleapis.com/requests_per_day"}
MINUTE = {"quotaId": "GenerateRequestsPerMinutePerProjectPerModel"}


def _quota(*violations: dict, delay: str | None = None) -> list[dict]:
    details = [{"@type": RPC + "QuotaFailure", "violations": list(violations)}]
    return details + ([{"@type": RPC + "RetryInfo", "retryDelay": delay}] if delay else [])


@pytest.mark.parametrize(
    ("code", "details", "transient", "halts", "reason", "delay"),
    [
        (429, _quota(MINUTE, delay="37s"), True, False, "RESOURCE_EXHAUSTED", 37.0),
        (429, _quota(MINUTE, delay="1.5s"), True, False, "RESOURCE_EXHAUSTED", 1.5),
        (429, [], True, False, "RESOURCE_EXHAUSTED", None),
        (429, _quota(DAY, delay="17s"), False, True, "DAILY_QUOTA_EXHAUSTED", 17.0),
        (429, _quota(MINUTE, DAY_METRIC), False, True, "DAILY_QUOTA_EXHAUSTED", None),
        (500, [], True, False, "INTERNAL", None),
        (502, [], True, False, "UNAVAILABLE", None),
        (503, [], True, False, "UNAVAILABLE", None),
        (504, [], True, False, "DEADLINE_EXCEEDED", None),
        (400, [KEY_INVALID], False, True, "API_KEY_INVALID", None),
        (401, [], False, True, "UNAUTHENTICATED", None),
        (403, [], False, True, "PERMISSION_DENIED", None),
        (404, [], False, True, "NOT_FOUND", None),
        (400, [], False, False, "INVALID_ARGUMENT", None),
    ],
)
def test_documented_error_bodies(
    code: int, details: list, transient: bool, halts: bool, reason: str, delay: float | None
) -> None:
    verdict = classify_error(code, google_error(code, "what Google said", details))
    assert (verdict.transient, verdict.halts_run, verdict.reason) == (transient, halts, reason)
    assert verdict.retry_delay_s == delay
    assert verdict.status_code == code
    assert "what Google said" in verdict.message and str(code) in verdict.message


@pytest.mark.parametrize(
    ("message", "details", "daily"),
    [
        ("Quota exceeded for requests per day. Try again tomorrow.", [], True),
        ("Quota exceeded for metric: generate_requests_per_day, limit: 100", [], True),
        ("Quota exceeded for quota metric 'Requests PerDay'", [{"@type": RPC + "Help"}], True),
        # The message says per day; the details name nothing: still the daily quota.
        ("You exceeded your requests per day.", _quota({"quotaValue": "100"}), True),
        # The details name the minute: they win over the message.
        ("Requests per day and per minute are limited.", _quota(MINUTE), False),
        ("You exceeded your current quota.", [], False),
        ("Quota exceeded for requests per minute.", [], False),
    ],
)
def test_a_daily_quota_named_only_in_the_message(message: str, details: list, daily: bool) -> None:
    verdict = classify_error(429, google_error(429, message, details))
    assert (verdict.reason == "DAILY_QUOTA_EXHAUSTED") is daily
    assert (verdict.transient, verdict.halts_run) == (not daily, daily)


def test_bad_key_message_is_clear() -> None:
    body = Reply.error(400, "API key not valid. Please pass a valid API key.", [KEY_INVALID]).body
    verdict = classify_error(400, body)
    assert verdict.message == (
        "Gemini rejected the API key (400 API_KEY_INVALID: "
        "API key not valid. Please pass a valid API key.)"
    )


def test_failed_precondition_halts_the_run() -> None:
    verdict = classify_error(400, {"error": {"code": 400, "status": "FAILED_PRECONDITION"}})
    assert verdict.halts_run and not verdict.transient


@pytest.mark.parametrize(
    ("code", "body", "transient"),
    [(502, "<html>Bad gateway</html>", True), (503, None, True), (418, None, False)],
)
def test_error_without_googles_body_is_judged_by_status(
    code: int, body: object, transient: bool
) -> None:
    verdict = classify_error(code, body)
    assert verdict.transient is transient and verdict.reason == f"HTTP_{code}"


def test_retry_after_header_is_used_when_the_body_has_no_retry_info() -> None:
    assert classify_error(503, None, retry_after="4").retry_delay_s == 4.0
    body = google_error(429, None, _quota(MINUTE, delay="2s"))
    assert classify_error(429, body, retry_after="9").retry_delay_s == 2.0


@pytest.mark.parametrize(
    ("error", "transient", "reason"),
    [
        (requests.ConnectionError("refused"), True, "CONNECTION_ERROR"),
        (requests.ConnectTimeout("slow"), True, "TIMEOUT"),
        (requests.ReadTimeout("slow"), True, "TIMEOUT"),
        (requests.exceptions.ChunkedEncodingError("cut"), True, "CONNECTION_ERROR"),
        (requests.exceptions.InvalidURL("bad"), False, "CLIENT_ERROR"),
        # urllib3's own errors: the connection broke or fell silent while the body came.
        (urllib3.exceptions.ReadTimeoutError(None, "/", "slow"), True, "TIMEOUT"),
        (urllib3.exceptions.ProtocolError("Connection broken"), True, "CONNECTION_ERROR"),
    ],
)
def test_transport_errors(error: Exception, transient: bool, reason: str) -> None:
    verdict = classify_transport_error(error)
    assert (verdict.transient, verdict.reason) == (transient, reason)
    assert verdict.halts_run is not transient
