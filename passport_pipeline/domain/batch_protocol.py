"""Gemini's Batch API for covers: the request shapes, the batch's state, and its answers.

Pure logic, no I/O. A month's covers go to ``models/{model}:batchGenerateContent`` as the same
``GenerateContentRequest`` bodies as the direct path (``gemini_protocol.build_generate_body``),
each tied to its user by a key (``user_<id>``): inline (``inputConfig.requests.requests[]``
with ``metadata.key``) while the create call stays under the documented 20 MB, otherwise as a
JSONL file (one ``{"key", "request"}`` per line) uploaded through the Files API
(``inputConfig.fileName``). ``batches.get`` answers a long-running Operation whose
``metadata`` is the ``GenerateContentBatch`` (``state``, ``batchStats``, ``output``); a
finished batch's answers are ``output.inlinedResponses.inlinedResponses[]`` (``response`` or
``error``, with the request's ``metadata``) or a ``responsesFile`` of JSONL lines.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from passport_pipeline.domain.gemini_protocol import GeminiImage, Verdict, interpret_generate_answer
from passport_pipeline.domain.images import DEFAULT_MAX_IMAGE_BYTES

# "Suitable for smaller batches that keep the total request size under 20MB" (Batch API guide).
INLINE_LIMIT_BYTES = 20_000_000
# An inline batch's answers come back inline too, in every batches.get once it is done: about
# 2 MB of base64 per cover image. Inline only while the answers also stay under the limit.
ANSWER_BYTES_ESTIMATE = 2_000_000
# google.rpc.Code: a per-request error in a batch is a google.rpc.Status, an integer code and
# a message with no status string.
GRPC_CODES = (
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
)
PENDING, RUNNING, SUCCEEDED = "PENDING", "RUNNING", "SUCCEEDED"
FAILED, CANCELLED, EXPIRED = "FAILED", "CANCELLED", "EXPIRED"
OPEN_STATES = frozenset({PENDING, RUNNING})
FINAL_STATES = frozenset({SUCCEEDED, FAILED, CANCELLED, EXPIRED})
_WHAT_TO_DO = {
    FAILED: "Gemini could not run the batch; check the model and the key, then launch the month "
    "again (it submits a new batch for the users still without a cover)",
    CANCELLED: "the batch was cancelled (a Terminate, or by hand); launch the month again to "
    "submit a new batch for the users still without a cover",
    EXPIRED: "Gemini did not finish the batch within its 48 hours and dropped it, unpaid; launch "
    "the month again (a new batch), or run it at the full price with run config "
    "ops: {passport_covers: {config: {direct: true}}}",
}


def user_key(user_id: int) -> str:
    """The key that ties a request and its answer to a user."""
    return f"user_{user_id}"


def key_user(key: str) -> int | None:
    prefix, _, number = key.partition("_")
    return int(number) if prefix == "user" and number.isdigit() else None


@dataclass(frozen=True)
class BatchAnswer:
    """One request's outcome inside a finished batch: a GenerateContentResponse or a Status."""

    key: str
    response: Mapping[str, Any] | None = None
    error: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class BatchSlot:
    """A user's part in a batch, as the results run hands it to the user's step."""

    batch_name: str
    answer: BatchAnswer | None  # None: the finished batch has no answer for this user


@dataclass(frozen=True)
class BatchJob:
    """A batch as ``batches.get`` (or the create call) describes it."""

    name: str
    state: str  # PENDING, RUNNING, SUCCEEDED, FAILED, CANCELLED, EXPIRED (or UNSPECIFIED)
    display_name: str = ""
    request_count: int = 0
    succeeded: int = 0
    failed: int = 0
    pending: int = 0
    responses_file: str | None = None
    inlined: tuple[Mapping[str, Any], ...] | None = None
    error: str | None = None  # the Operation's error message, when Gemini gave one

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES

    def progress(self) -> str:
        """One line for people: the state and the counts."""
        line = f"{self.state}: {self.succeeded + self.failed} of {self.request_count} answered"
        extra = [f"{self.failed} failed"] if self.failed else []
        extra += [f"{self.pending} pending"] if self.pending else []
        return line + (f" ({', '.join(extra)})" if extra else "")


def inline_body(display_name: str, requests: Iterable[tuple[str, dict[str, Any]]]) -> dict:
    """The create call's body with the requests inline, each keyed in its metadata."""
    inlined = [{"request": body, "metadata": {"key": key}} for key, body in requests]
    return {
        "batch": {
            "displayName": display_name,
            "inputConfig": {"requests": {"requests": inlined}},
        }
    }


def file_body(display_name: str, file_name: str) -> dict:
    """The create call's body for requests uploaded as a JSONL file (``files/…``)."""
    return {"batch": {"displayName": display_name, "inputConfig": {"fileName": file_name}}}


def jsonl(requests: Iterable[tuple[str, dict[str, Any]]]) -> bytes:
    """The input file: one ``{"key", "request"}`` object per line."""
    lines = (json.dumps({"key": key, "request": body}) for key, body in requests)
    return ("\n".join(lines) + "\n").encode()


def fits_inline(body: dict, limit_bytes: int = INLINE_LIMIT_BYTES) -> bool:
    """Whether the create call, and the answers that will come back inline, stay under the
    limit; a larger month goes as a JSONL file, and its answers as a results file."""
    requests = body["batch"]["inputConfig"]["requests"]["requests"]
    answers = len(requests) * ANSWER_BYTES_ESTIMATE
    return max(len(json.dumps(body).encode()), answers) < limit_bytes


def parse_batch(payload: object) -> BatchJob:
    """A ``batches.get`` (or create) answer: an Operation, or a bare GenerateContentBatch."""
    payload = payload if isinstance(payload, Mapping) else {}
    batch = payload.get("metadata") if isinstance(payload.get("metadata"), Mapping) else payload
    stats = batch.get("batchStats") if isinstance(batch.get("batchStats"), Mapping) else {}
    output = batch.get("output") if isinstance(batch.get("output"), Mapping) else None
    if output is None and isinstance(payload.get("response"), Mapping):
        output = payload["response"]
    output = output or {}
    inlined = output.get("inlinedResponses")
    if isinstance(inlined, Mapping):
        inlined = inlined.get("inlinedResponses")
    error = payload.get("error") if isinstance(payload.get("error"), Mapping) else None
    return BatchJob(
        name=str(payload.get("name") or batch.get("name") or ""),
        state=_state(batch.get("state")),
        display_name=str(batch.get("displayName") or ""),
        request_count=_int(stats.get("requestCount")),
        succeeded=_int(stats.get("successfulRequestCount")),
        failed=_int(stats.get("failedRequestCount")),
        pending=_int(stats.get("pendingRequestCount")),
        responses_file=str(output["responsesFile"]) if output.get("responsesFile") else None,
        inlined=tuple(r for r in inlined if isinstance(r, Mapping)) if inlined else None,
        error=str(error.get("message")) if error else None,
    )


def inline_answers(job: BatchJob, keys: list[str]) -> Iterator[BatchAnswer]:
    """The answers of an inline batch; ``keys`` (the requests' keys, in order) name an answer
    whose metadata lost its key: Google writes answers in the order of the requests."""
    for index, item in enumerate(job.inlined or ()):
        yield _answer(item, keys[index] if index < len(keys) else None)


def file_answers(lines: Iterable[bytes | str], keys: list[str]) -> Iterator[BatchAnswer]:
    """The answers of a results file, read line by line (a line that is no JSON is skipped)."""
    index = 0
    for line in lines:
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError:
            index += 1
            continue
        if isinstance(item, Mapping):
            yield _answer(item, keys[index] if index < len(keys) else None)
        index += 1


def interpret_answer(
    answer: BatchAnswer, max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES
) -> GeminiImage | Verdict:
    """A user's answer: the same reading as a direct 200 answer, or why there is no image."""
    if answer.error is not None:
        status = status_name(answer.error)
        message = str(answer.error.get("message") or "no message").strip()
        said = f"Gemini's batch answered this request with an error ({status}: {message})"
        return Verdict(False, status, said)
    if answer.response is None:
        return Verdict(False, "BAD_RESPONSE", "Gemini's batch answer has no response nor error")
    return interpret_generate_answer(answer.response, max_image_bytes)


def status_name(status: Mapping[str, Any]) -> str:
    """A google.rpc.Status's code by name (``8`` is RESOURCE_EXHAUSTED); a ``status`` string,
    where one is given, wins; an unknown code reads ``CODE_<n>``."""
    if status.get("status"):
        return str(status["status"])
    code = status.get("code")
    if isinstance(code, int) and not isinstance(code, bool) and 0 <= code < len(GRPC_CODES):
        return GRPC_CODES[code]
    return f"CODE_{code}"


def stopped_message(job: BatchJob, month: str) -> str:
    """Why a month's batch gave no covers, and what to do."""
    said = f": {job.error}" if job.error else ""
    todo = _WHAT_TO_DO.get(job.state, "launch the month again")
    return f"{month}: Gemini batch {job.name} ended {job.state}{said}. What to do: {todo}."


def _answer(item: Mapping[str, Any], fallback_key: str | None) -> BatchAnswer:
    metadata = item.get("metadata") if isinstance(item.get("metadata"), Mapping) else {}
    key = item.get("key") or metadata.get("key") or fallback_key or ""
    response = item.get("response") if isinstance(item.get("response"), Mapping) else None
    error = item.get("error") or item.get("status")
    return BatchAnswer(str(key), response, error if isinstance(error, Mapping) else None)


def _state(value: object) -> str:
    # REST documents BATCH_STATE_*; the SDKs show JOB_STATE_*: read either.
    text = str(value or "UNSPECIFIED")
    for prefix in ("BATCH_STATE_", "JOB_STATE_"):
        text = text.removeprefix(prefix)
    return text


def _int(value: object) -> int:
    try:
        return int(value)  # int64 fields arrive as strings
    except (TypeError, ValueError):
        return 0
