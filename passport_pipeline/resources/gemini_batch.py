"""Gemini's Batch API: the month's requests at half the price, answered within 24 hours.

``GeminiBatchImageModel`` is the Gemini model with the batch calls added: ``submit`` (inline,
or a JSONL file through the Files API's resumable upload), ``get``, ``answers`` and ``cancel``.
Its ``generate`` is still the direct call (full price): the normal path for a user the batch
could not cover. Shapes and readings live in ``domain/batch_protocol.py``.

Every call is read as Google sends it (chunked, gzip) within a deadline and a size limit
(``http_body.py``): a JSON answer is at most what an inline batch's answers can hold, and a
results file is read line by line, in linear time, holding one line (one user's answer) at a
time.

Retries (tenacity): a call is sent again after a connection error, a 429 or a 5xx. Creating a
batch is not sent again after a timeout: the first create may have arrived, and a second batch
would be paid for again (``find_unrecorded`` finds such a batch by its display name).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import requests
import urllib3
from pydantic import Field
from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from passport_pipeline.domain import batch_protocol as protocol
from passport_pipeline.domain.batch_protocol import BatchAnswer, BatchJob
from passport_pipeline.domain.gemini_protocol import Verdict, classify_error, max_answer_bytes
from passport_pipeline.domain.records import GeneratedImage
from passport_pipeline.resources.gemini import GeminiImageModel
from passport_pipeline.resources.http_body import (
    Answer,
    BodyDeadlineExceeded,
    BodyTooLarge,
    BodyUndecodable,
    open_stream,
    read_body,
    read_lines,
)
from passport_pipeline.resources.image_model import (
    PermanentImageModelError,
    TransientImageModelError,
)

PATH_BATCH = "batch"


class _Retryable(Exception):
    def __init__(self, error: Exception):
        super().__init__(str(error))
        self.error = error


class GeminiBatchImageModel(GeminiImageModel):
    """Gemini through its Batch API (``PASSPORT_IMAGE_MODEL=gemini-batch``)."""

    batch_price_per_image_usd: float = 0.0195
    inline_limit_bytes: int = Field(
        default=protocol.INLINE_LIMIT_BYTES, description="Larger batches go as a JSONL file."
    )
    batch_timeout_s: float = Field(
        default=300, description="Deadline of one batch call (an upload, a create, a get)."
    )
    results_deadline_s: float = Field(
        default=3600, description="Deadline of reading one results file (GBs for a big month)."
    )

    def step_modules(self) -> tuple[str, ...]:
        return (*super().step_modules(), "passport_pipeline.resources.gemini_batch")

    def submit(self, display_name: str, requests_: list[tuple[str, dict[str, Any]]]) -> BatchJob:
        """Create one batch of keyed GenerateContentRequests; the batch as Gemini created it."""
        body = protocol.inline_body(display_name, requests_)
        if not protocol.fits_inline(body, self.inline_limit_bytes):
            file_name = self._upload(display_name, protocol.jsonl(requests_))
            body = protocol.file_body(display_name, file_name)
        path = f"v1beta/models/{self.model}:batchGenerateContent"
        answer = self._call("POST", path, json_body=body, resend_after_timeout=False)
        return protocol.parse_batch(_json(answer))

    def get(self, name: str) -> BatchJob:
        return protocol.parse_batch(_json(self._call("GET", f"v1beta/{name}")))

    def find(self, display_name_prefix: str, pages: int = 20) -> list[BatchJob]:
        """The batches (``batches.list``, newest first, at most ``pages`` pages of 50) whose
        display name starts with ``display_name_prefix``."""
        found: list[BatchJob] = []
        params = {"pageSize": "50"}
        for _ in range(pages):
            page = _json(self._call("GET", "v1beta/batches", params=params))
            for operation in page.get("operations") or []:
                job = protocol.parse_batch(operation)
                if job.display_name.startswith(display_name_prefix):
                    found.append(job)
            if not page.get("nextPageToken"):
                break
            params = {**params, "pageToken": str(page["nextPageToken"])}
        return found

    def cancel(self, name: str) -> None:
        self._call("POST", f"v1beta/{name}:cancel", json_body={})

    def answers(self, job: BatchJob, keys: list[str]) -> Iterator[BatchAnswer]:
        """A finished batch's answers, read line by line from its results file if it has one."""
        if job.responses_file is None:
            yield from protocol.inline_answers(job, keys)
            return
        path = f"download/v1beta/{job.responses_file}:download"
        deadline_s = self.results_deadline_s
        deadline = time.monotonic() + deadline_s
        # Asked for as is: a results file is base64 images, which gzip shrinks by a fifth while
        # inflating it costs the results run more CPU than the bytes it saves (bench/RESULTS.md).
        plain = {"Accept-Encoding": "identity"}
        with self._call(
            "GET", path, params={"alt": "media"}, headers=plain, stream=True
        ) as response:
            lines = read_lines(
                response,
                deadline=deadline,
                read_timeout_s=self.read_timeout_s,
                # One line is one user's answer: the most a direct answer may have.
                max_line_bytes=max_answer_bytes(self.max_image_bytes),
            )
            try:
                yield from protocol.file_answers(lines, keys)
            except (BodyDeadlineExceeded, BodyTooLarge, BodyUndecodable) as cut:
                raise TransientImageModelError(
                    self._scrub(f"reading {job.responses_file} of {job.name} stopped: {cut}")
                ) from None
            except (requests.RequestException, urllib3.exceptions.HTTPError) as error:
                raise TransientImageModelError(
                    f"reading {job.responses_file} of {job.name} broke off "
                    f"({type(error).__name__}); the next read starts it again"
                ) from None

    def image_from(self, answer: BatchAnswer) -> GeneratedImage:
        """A user's answer as a checked image, priced at the batch price; else the user's
        permanent failure (no retry: the batch will not answer differently)."""
        image = protocol.interpret_answer(answer, self.max_image_bytes)
        if isinstance(image, Verdict):
            raise PermanentImageModelError(
                self._scrub(image.message),
                reason=image.reason,
                unusable_answer=image.unusable,
                # An answer without an image that is not garbage: the model declined the prompt.
                refused=image.status_code == 200 and not image.unusable,
            )
        metadata: dict[str, str | int | float | bool] = {
            "path": PATH_BATCH,
            "attempts": 1,
            "model_version": image.model_version or self.model,
            "estimated_cost_usd": self.batch_price_per_image_usd,
            "mime_type": image.info.mime_type,
            "width": image.info.width,
            "height": image.info.height,
        }
        tokens = {"prompt_tokens": image.prompt_tokens, "output_tokens": image.output_tokens}
        metadata.update({name: count for name, count in tokens.items() if count is not None})
        model = image.model_version or self.model
        return GeneratedImage(image.data, image.info.mime_type, model, metadata, image.info)

    # -- internals -------------------------------------------------------------------------

    def _upload(self, display_name: str, data: bytes) -> str:
        """The Files API's resumable upload: start, then upload and finalize; the file's name."""
        start = self._call(
            "POST",
            "upload/v1beta/files",
            json_body={"file": {"display_name": display_name}},
            headers={
                "X-Goog-Upload-Protocol": "resumable",
                "X-Goog-Upload-Command": "start",
                "X-Goog-Upload-Header-Content-Length": str(len(data)),
                "X-Goog-Upload-Header-Content-Type": "application/jsonl",
            },
        )
        upload_url = start.headers.get("X-Goog-Upload-URL")
        if not upload_url:
            raise TransientImageModelError("Gemini's Files API gave no upload URL")
        done = self._call(
            "POST",
            upload_url,
            data=data,
            headers={"X-Goog-Upload-Offset": "0", "X-Goog-Upload-Command": "upload, finalize"},
            resend_after_timeout=False,
        )
        return str(_json(done)["file"]["name"])

    def _call(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        stream: bool = False,
        resend_after_timeout: bool = True,
    ) -> Any:
        """One Batch/Files API call, retried as the module says: the whole ``Answer`` (read
        within the deadline and the size limit), or with ``stream`` the open response, its
        body unread (the caller closes it)."""
        url = path if path.startswith("http") else f"{self.base_url.rstrip('/')}/{path}"
        all_headers = {"x-goog-api-key": self.api_key.strip(), **(headers or {})}
        timeouts = (self.connect_timeout_s, self.batch_timeout_s)
        # An inline batch's answers come back in its get: up to the inline limit, and a user's
        # answer more.
        limit = self.inline_limit_bytes + max_answer_bytes(self.max_image_bytes)

        def once() -> Any:
            try:
                response = open_stream(
                    self._get_session(),
                    method,
                    url,
                    headers=all_headers,
                    timeouts=timeouts,
                    deadline_s=self.batch_timeout_s,
                    json_body=json_body,
                    data=data,
                    params=params,
                )
                if response.ok and stream:
                    return response
                with response:
                    deadline = time.monotonic() + self.batch_timeout_s
                    body = read_body(
                        response,
                        deadline=deadline,
                        read_timeout_s=self.batch_timeout_s,
                        max_bytes=limit,
                    )
            except (requests.ConnectionError, urllib3.exceptions.ProtocolError) as error:
                raise _Retryable(error) from None
            except (requests.Timeout, urllib3.exceptions.TimeoutError, BodyDeadlineExceeded):
                if resend_after_timeout:
                    raise _Retryable(TimeoutError(f"{method} {path}")) from None
                raise TransientImageModelError(
                    f"Gemini did not answer {method} {path} in time (not sent again: it may "
                    "have arrived)"
                ) from None
            except (BodyTooLarge, BodyUndecodable) as unreadable:
                raise TransientImageModelError(
                    self._scrub(f"Gemini's answer to {method} {path.split('?')[0]}: {unreadable}")
                ) from None
            answer = Answer(response.status_code, response.headers, body)
            if response.ok:
                return answer
            verdict = classify_error(
                response.status_code,
                _json(answer, strict=False),
                response.headers.get("Retry-After"),
            )
            message = self._scrub(f"{method} {path.split('?')[0]}: {verdict.message}")
            if verdict.transient:
                raise _Retryable(TransientImageModelError(message))
            raise PermanentImageModelError(
                message, reason=verdict.reason, halts_run=verdict.halts_run
            )

        retrying = Retrying(
            stop=stop_after_attempt(max(1, self.max_attempts)),
            wait=wait_exponential(multiplier=self.initial_backoff_s, max=self.max_backoff_s)
            + wait_random(0, self.initial_backoff_s),
            retry=retry_if_exception(lambda e: isinstance(e, _Retryable)),
            reraise=True,
        )
        try:
            return retrying(once)
        except _Retryable as failed:
            error = failed.error
            if isinstance(error, TransientImageModelError):
                raise error from None
            raise TransientImageModelError(
                self._scrub(f"could not talk to Gemini ({type(error).__name__})")
            ) from None

    def _scrub(self, text: str) -> str:
        key = self.api_key.strip()
        return text.replace(key, "[redacted]") if key else text


def _json(answer: Answer, strict: bool = True) -> Any:
    """The answer's JSON; with ``strict``, an answer that is none is Gemini's fault, retried by
    the next poll or launch."""
    try:
        return json.loads(answer.body)
    except ValueError:
        if not strict:
            return None
        raise TransientImageModelError(
            f"Gemini answered {answer.status_code} with a body that is not JSON "
            f"({len(answer.body):,} bytes)"
        ) from None
