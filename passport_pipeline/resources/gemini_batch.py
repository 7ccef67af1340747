"""Gemini's Batch API: the month's requests at half the price, answered within 24 hours.

``GeminiBatchImageModel`` is the Gemini model with the batch calls added: ``submit`` (inline,
or a JSONL file through the Files API's resumable upload), ``get``, ``answers`` and ``cancel``.
Its ``generate`` is still the direct call (full price): the normal path for a user the batch
could not cover. Shapes and readings live in ``domain/batch_protocol.py``.

Retries (tenacity): a call is sent again after a connection error, a 429 or a 5xx. Creating a
batch is not sent again after a timeout: the first create may have arrived, and a second batch
would be paid for again.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import requests
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
from passport_pipeline.domain.gemini_protocol import Verdict, classify_error
from passport_pipeline.domain.records import GeneratedImage
from passport_pipeline.resources.gemini import GeminiImageModel
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
        default=300, description="Timeout of one batch call (an upload or a results download)."
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
        return protocol.parse_batch(answer.json())

    def get(self, name: str) -> BatchJob:
        return protocol.parse_batch(self._call("GET", f"v1beta/{name}").json())

    def cancel(self, name: str) -> None:
        self._call("POST", f"v1beta/{name}:cancel", json_body={})

    def answers(self, job: BatchJob, keys: list[str]) -> Iterator[BatchAnswer]:
        """A finished batch's answers, read line by line from its results file if it has one."""
        if job.responses_file is None:
            yield from protocol.inline_answers(job, keys)
            return
        path = f"download/v1beta/{job.responses_file}:download"
        answer = self._call("GET", path, params={"alt": "media"}, stream=True)
        with answer:
            yield from protocol.file_answers(answer.iter_lines(), keys)

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
        return str(done.json()["file"]["name"])

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
    ) -> requests.Response:
        url = path if path.startswith("http") else f"{self.base_url.rstrip('/')}/{path}"
        all_headers = {"x-goog-api-key": self.api_key.strip(), **(headers or {})}

        def once() -> requests.Response:
            try:
                response = self._get_session().request(
                    method,
                    url,
                    json=json_body,
                    data=data,
                    headers=all_headers,
                    params=params,
                    timeout=(self.connect_timeout_s, self.batch_timeout_s),
                    stream=stream,
                )
            except requests.ConnectionError as error:
                raise _Retryable(error) from None
            except requests.Timeout as error:
                if resend_after_timeout:
                    raise _Retryable(error) from None
                raise TransientImageModelError(
                    f"Gemini did not answer {method} {path} in time (not sent again: it may "
                    "have arrived)"
                ) from None
            if response.ok:
                return response
            try:
                payload = response.json()
            except ValueError:
                payload = None
            response.close()
            verdict = classify_error(
                response.status_code, payload, response.headers.get("Retry-After")
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
