"""Gemini's REST protocol for image generation, and the one place a retry is decided.

Pure logic, no I/O: the request body, the reading of a 200 answer, and the verdict on every
other answer (Google's error body ``{"error": {"code", "status", "message", "details"}}``)
and on transport errors. The resource in ``resources/gemini.py`` only acts on the verdicts.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests
import urllib3

from passport_pipeline.domain.images import (
    DEFAULT_MAX_IMAGE_BYTES,
    ImageInfo,
    ImageTooLargeError,
    InvalidImageError,
    check_image_size,
    inspect_image,
)

RESPONSE_MODALITIES = ("TEXT", "IMAGE")
RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
QUOTA_FAILURE = "type.googleapis.com/google.rpc.QuotaFailure"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")
_PER_DAY = re.compile(r"per[\s_-]?day", re.IGNORECASE)
_PER_SHORTER = re.compile(r"per[\s_-]?(minute|second|hour)", re.IGNORECASE)
# Answers that no other user's request can succeed against: the run stops at the first one.
_HALTING_REASONS = {"API_KEY_INVALID", "API_KEY_EXPIRED", "API_KEY_SERVICE_BLOCKED"}
_HALTING_STATUSES = {"PERMISSION_DENIED", "UNAUTHENTICATED", "FAILED_PRECONDITION"}
_TRANSIENT_CODES = {408, 429, 500, 502, 503, 504}
# An answer that is no usable image (bytes that do not decode, a body that is not JSON, an
# oversize image) is paid for like an image. A second generation may come out right, but a
# model that answers garbage does so every time: such an answer is asked again once per user.
UNUSABLE_RETRIES = 1
# JSON, text parts and thought signatures around the image's base64 in a generate answer.
ANSWER_OVERHEAD_BYTES = 1_000_000


@dataclass(frozen=True)
class Verdict:
    """Why a call gave no usable image, and whether another try can help."""

    transient: bool
    reason: str  # ErrorInfo reason, Google status, finishReason, or a name of ours
    message: str  # for people: what happened, never a header or a key
    halts_run: bool = False
    retry_delay_s: float | None = None  # the server's own RetryInfo.retryDelay
    daily_quota: bool = False  # a 429 for a per-day quota: the month resumes after the reset
    status_code: int | None = None
    unusable: bool = False  # a 200 that is no usable image: asked again only UNUSABLE_RETRIES
    rate_limited: bool = False  # a 429 for a per-minute (not a per-day) quota
    quota_value: float | None = None  # that quota's value, as its QuotaFailure names it


@dataclass(frozen=True)
class GeminiImage:
    """A 200 answer carrying an image that decodes."""

    data: bytes
    info: ImageInfo
    declared_mime_type: str
    model_version: str | None
    prompt_tokens: int | None
    output_tokens: int | None
    total_tokens: int | None
    text: str


def build_generate_body(prompt: str, aspect_ratio: str) -> dict[str, Any]:
    """The JSON body of ``models/{model}:generateContent`` for one cover."""
    return {
        "contents": [{"role": "user", "parts": [{"text": prompt}]}],
        "generationConfig": {
            "responseModalities": list(RESPONSE_MODALITIES),
            "imageConfig": {"aspectRatio": aspect_ratio},
        },
    }


def parse_duration(value: object) -> float | None:
    """A protobuf Duration as JSON ("37s", "1.5s", or {"seconds", "nanos"}) in seconds."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        return float(match.group(1)) if match else None
    if isinstance(value, Mapping):
        try:
            return int(value.get("seconds", 0)) + int(value.get("nanos", 0)) / 1e9
        except (TypeError, ValueError):
            return None
    return None


def worth_another_try(verdict: Verdict, unusable_answers: int) -> bool:
    """Whether to call again after ``verdict``, when this user's call has had
    ``unusable_answers`` answers that were no usable image (this one included)."""
    if unusable_answers > UNUSABLE_RETRIES:
        return False
    return verdict.transient or verdict.unusable


def unusable_message(unusable: Verdict, last: Verdict, attempts: int) -> str:
    """Why a user failed after an answer that was no usable image (and what came last)."""
    message = (
        f"{unusable.message} ({unusable.reason}; gave up after {attempts} attempts: an answer "
        "that is no usable image is asked again only once)"
    )
    return message if last is unusable else f"{message}; the last attempt: {last.message}"


def max_answer_bytes(max_image_bytes: int) -> int:
    """The most of an answer's body worth reading: the image's base64 plus the JSON around it."""
    return max_image_bytes * 4 // 3 + ANSWER_OVERHEAD_BYTES


def answer_too_large(size: int, limit: int, declared: bool) -> Verdict:
    """The verdict on a body longer than ``max_answer_bytes``; it was not read to its end."""
    said = f"declares {size:,} bytes" if declared else f"ran past {size:,} bytes"
    message = f"Gemini's answer {said}, more than the {limit:,} a cover's answer may have"
    return Verdict(False, "IMAGE_TOO_LARGE", message, unusable=True)


def undecodable(encoding: str, received_bytes: int) -> Verdict:
    """The verdict on a body whose bytes do not decode as its Content-Encoding says: an
    answer that was paid for and is no usable image."""
    message = (
        f"Gemini's answer said it was {encoding}-encoded but does not decode "
        f"({received_bytes:,} bytes of it had been read)"
    )
    return Verdict(False, "BAD_ENCODING", message, status_code=200, unusable=True)


def deadline_exceeded(deadline_s: float, received_bytes: int) -> Verdict:
    """The verdict on an attempt cut at its total deadline while the answer was still coming."""
    message = (
        f"Gemini did not finish its answer within the {deadline_s:g} s deadline "
        f"({received_bytes:,} bytes of it had arrived)"
    )
    return Verdict(True, "TIMEOUT", message)


def interpret_generate_answer(
    body: object, max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES
) -> GeminiImage | Verdict:
    """Read a 200 answer of generateContent: an image that decodes, or why there is none."""
    if not isinstance(body, Mapping):
        message = "Gemini answered 200 with a body that is not JSON"
        return Verdict(False, "BAD_RESPONSE", message, status_code=200, unusable=True)
    usage = body.get("usageMetadata") if isinstance(body.get("usageMetadata"), Mapping) else {}
    candidates = body.get("candidates") if isinstance(body.get("candidates"), list) else []
    first = candidates[0] if candidates and isinstance(candidates[0], Mapping) else {}
    content = first.get("content") if isinstance(first.get("content"), Mapping) else {}
    parts = [p for p in content.get("parts") or [] if isinstance(p, Mapping)]
    texts = [p["text"] for p in parts if isinstance(p.get("text"), str)]
    inline = next(
        (
            p["inlineData"]
            for p in parts
            if isinstance(p.get("inlineData"), Mapping)
            and str(p["inlineData"].get("mimeType", "")).lower().startswith("image/")
        ),
        None,
    )
    if inline is None:
        return _no_image(body, first, " ".join(texts))
    encoded = str(inline.get("data") or "")
    try:
        check_image_size(len(encoded.rstrip("=")) * 3 // 4, max_image_bytes)  # before decoding
        data = _decode_base64(encoded)
        info = inspect_image(data, max_image_bytes)
    except (binascii.Error, ValueError, InvalidImageError) as error:
        detail = error if isinstance(error, InvalidImageError) else "its base64 does not decode"
        reason = "IMAGE_TOO_LARGE" if isinstance(error, ImageTooLargeError) else "INVALID_IMAGE"
        message = f"Gemini returned an unusable image: {detail}"
        return Verdict(False, reason, message, status_code=200, unusable=True)
    return GeminiImage(
        data=data,
        info=info,
        declared_mime_type=str(inline.get("mimeType")),
        model_version=version if isinstance(version := body.get("modelVersion"), str) else None,
        prompt_tokens=_count(usage, "promptTokenCount"),
        output_tokens=_count(usage, "candidatesTokenCount"),
        total_tokens=_count(usage, "totalTokenCount"),
        text=" ".join(texts),
    )


def classify_error(status_code: int, body: object, retry_after: str | None = None) -> Verdict:
    """The verdict on a non-2xx answer, from its status and Google's documented error body."""
    error = body.get("error") if isinstance(body, Mapping) else None
    error = error if isinstance(error, Mapping) else {}
    status = str(error.get("status") or f"HTTP_{status_code}")
    google_message = str(error.get("message") or "no message").strip()
    details = [d for d in error.get("details") or [] if isinstance(d, Mapping)]
    info_reason = next((str(d["reason"]) for d in _typed(details, ERROR_INFO, "reason")), None)
    reason = info_reason or status
    said = f"{status_code} {reason}: {google_message}"

    def verdict(transient: bool, message: str, **extra: Any) -> Verdict:
        extra.setdefault("reason", reason)
        return Verdict(transient, message=message, status_code=status_code, **extra)

    delay = next(
        (parse_duration(d["retryDelay"]) for d in _typed(details, RETRY_INFO, "retryDelay")),
        None,
    )
    if delay is None and retry_after is not None:
        delay = parse_duration(f"{retry_after.strip()}s")
    if status_code == 429 and _is_daily_quota(details, google_message):
        return verdict(
            False,
            f"Gemini's daily quota is used up, not retried in this run ({said})",
            reason="DAILY_QUOTA_EXHAUSTED",
            daily_quota=True,
            # No later user's call can succeed today either: stop the run, spend nothing more.
            halts_run=True,
            # When the quota is back, if Google says (the month resumes then: quota_days.py).
            retry_delay_s=delay,
        )
    if status_code in _TRANSIENT_CODES or status_code >= 500:
        if status_code == 429:
            return verdict(
                True,
                f"Gemini answered {said}",
                retry_delay_s=delay,
                rate_limited=True,
                quota_value=_per_minute_quota(details),
            )
        return verdict(True, f"Gemini answered {said}", retry_delay_s=delay)
    if info_reason in _HALTING_REASONS:
        return verdict(False, f"Gemini rejected the API key ({said})", halts_run=True)
    if status_code in (401, 403) or status in _HALTING_STATUSES:
        return verdict(False, f"Gemini refused access ({said})", halts_run=True)
    if status_code == 404:
        return verdict(False, f"Gemini does not know the model ({said})", halts_run=True)
    return verdict(False, f"Gemini rejected the request ({said})")


def classify_transport_error(
    error: requests.RequestException | urllib3.exceptions.HTTPError,
    deadline_s: float | None = None,
) -> Verdict:
    """The verdict when no whole HTTP answer came back (urllib3's errors: read mid-body).

    ``deadline_s``: the attempt's deadline, when it was shorter than the read timeout and so
    was what cut a silent wait."""
    name = type(error).__name__
    if deadline_s is not None and isinstance(error, requests.ReadTimeout):
        return deadline_exceeded(deadline_s, 0)
    if isinstance(error, requests.ConnectTimeout):
        return Verdict(True, "TIMEOUT", f"Gemini did not accept a connection in time ({name})")
    if isinstance(error, requests.Timeout | urllib3.exceptions.TimeoutError):
        return Verdict(True, "TIMEOUT", f"Gemini did not answer within the read timeout ({name})")
    broken = (requests.ConnectionError, requests.exceptions.ChunkedEncodingError)
    if isinstance(error, (*broken, urllib3.exceptions.HTTPError)):
        return Verdict(True, "CONNECTION_ERROR", f"could not talk to Gemini ({name}: {error})")
    # An invalid URL or header: a configuration mistake that no retry and no user can fix.
    message = f"could not call Gemini ({name}: {error})"
    return Verdict(False, "CLIENT_ERROR", message, halts_run=True)


def _no_image(body: Mapping[str, Any], candidate: Mapping[str, Any], text: str) -> Verdict:
    feedback = body.get("promptFeedback")
    block = feedback.get("blockReason") if isinstance(feedback, Mapping) else None
    finish = candidate.get("finishReason")
    if block:
        reason, said = str(block), f"promptFeedback.blockReason {block}"
    elif finish and finish != "STOP":
        reason, said = str(finish), f"finishReason {finish}"
    else:
        reason, said = "NO_IMAGE", f"finishReason {finish or 'missing'}, no image part"
    extra = candidate.get("finishMessage") or text
    if extra:
        said += f" ({str(extra).strip()[:200]})"
    return Verdict(False, reason, f"Gemini returned no image: {said}", status_code=200)


def _typed(details: list[Mapping[str, Any]], type_url: str, field: str) -> list[Mapping]:
    return [d for d in details if d.get("@type") == type_url and d.get(field)]


def _is_daily_quota(details: list[Mapping[str, Any]], message: str) -> bool:
    """A per-day quota named by a QuotaFailure violation, or else by the message alone.

    The message counts only when no violation names a shorter window: a per-minute quota
    wrongly read as daily would halt the whole run."""
    fields = ("quotaId", "quotaMetric", "subject", "description")
    named: list[str] = []
    for detail in _typed(details, QUOTA_FAILURE, "violations"):
        for violation in detail["violations"]:
            if isinstance(violation, Mapping):
                named += [str(violation.get(f, "")) for f in fields]
    if any(_PER_DAY.search(text) for text in named):
        return True
    if any(_PER_SHORTER.search(text) for text in named):
        return False
    return bool(_PER_DAY.search(message))


def _per_minute_quota(details: list[Mapping[str, Any]]) -> float | None:
    """The smallest per-minute quota value a QuotaFailure names (what the pace should not
    exceed), or None."""
    values = []
    for detail in _typed(details, QUOTA_FAILURE, "violations"):
        for violation in detail["violations"]:
            if not isinstance(violation, Mapping):
                continue
            named = " ".join(str(violation.get(f, "")) for f in ("quotaId", "quotaMetric"))
            try:
                value = float(violation.get("quotaValue"))
            except (TypeError, ValueError):
                continue
            if re.search(r"per[\s_-]?minute", named, re.IGNORECASE) and value > 0:
                values.append(value)
    return min(values, default=None)


def _decode_base64(data: str) -> bytes:
    if "-" in data or "_" in data:
        return base64.urlsafe_b64decode(data)
    return base64.b64decode(data, validate=True)


def _count(usage: Mapping[str, Any], name: str) -> int | None:
    value = usage.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else None
