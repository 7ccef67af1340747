"""Google's Gemini image model over its REST API (requests + tenacity).

Every retry decision comes from ``domain/gemini_protocol.py``; this module sends the calls,
waits as tenacity says, and turns verdicts into the image-model errors. The API key travels
only in the ``x-goog-api-key`` header: it is scrubbed from every message this module builds
and never written to metadata or logs.

Each HTTP attempt has a total deadline (``request_deadline_s``), not only a connect and a
read timeout: the body is streamed, decoded as HTTP says (Google answers chunked and gzip),
and the attempt is cut when the deadline passes or the decoded body outgrows what an image of
``max_image_bytes`` needs (see ``http_body.py``).

Paid attempts: one ``generate`` call makes at most ``max_attempts`` HTTP calls; a step retried
by Dagster's RetryPolicy multiplies that by the policy's attempts. An answer that is no usable
image is asked again only once: the second one raises ``PermanentImageModelError`` with
``unusable_answer``, which no layer retries, so garbage costs at most 2 paid calls per user.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import requests
import urllib3
from dagster import InitResourceContext
from pydantic import Field, PrivateAttr
from requests.adapters import HTTPAdapter
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from passport_pipeline import stop_signal
from passport_pipeline.domain import gemini_protocol as protocol
from passport_pipeline.domain.gemini_protocol import GeminiImage, Verdict
from passport_pipeline.domain.gemini_responses import OK, response_class, tally_metadata, tally_text
from passport_pipeline.domain.images import DEFAULT_MAX_IMAGE_BYTES
from passport_pipeline.domain.pacing import START_RATE, START_WIDTH
from passport_pipeline.domain.records import CoverRequest, GeneratedImage
from passport_pipeline.resources.http_body import (
    BodyDeadlineExceeded,
    BodyTooLarge,
    BodyUndecodable,
    send,
)
from passport_pipeline.resources.image_model import (
    AspectRatio,
    ImageModel,
    LocalImageModel,
    PermanentImageModelError,
    TransientImageModelError,
)
from passport_pipeline.resources.pacing import (
    Outcome,
    Pacer,
    PacingStore,
    instance_database_url,
)

log = logging.getLogger(__name__)
_SESSION_LOCK = threading.Lock()
_REDACTED = "[redacted]"


class _AttemptFailed(Exception):
    """One HTTP attempt gave no image; carries the protocol's verdict (already scrubbed)."""

    def __init__(self, verdict: Verdict):
        super().__init__(verdict.message)
        self.verdict = verdict
        self.attempts = 1
        self.first_unusable: Verdict | None = None  # an earlier answer that was no image
        self.unusable_answers = 0  # answers the model made (and were paid) that were no image
        self.responses: list[str] = []  # the class of every attempt (domain/gemini_responses.py)


class GeminiImageModel(ImageModel):
    """Generates covers with Gemini's ``generateContent`` (``responseModalities`` IMAGE)."""

    api_key: str = Field(repr=False, description="Gemini API key; pass EnvVar('GEMINI_API_KEY').")
    base_url: str = "https://generativelanguage.googleapis.com"
    model: str = "gemini-2.5-flash-image"
    aspect_ratio: AspectRatio = AspectRatio.RATIO_3_4  # config by name: YAML reads 3:4 as 184
    price_per_image_usd: float = 0.039
    connect_timeout_s: float = 10
    read_timeout_s: float = Field(
        default=150, description="Longest silence: a generation says nothing until it is done."
    )
    request_deadline_s: float = Field(
        default=180, description="Total time one HTTP attempt may take, however bytes trickle."
    )
    max_image_bytes: int = Field(
        default=DEFAULT_MAX_IMAGE_BYTES, description="Larger images are refused, unread."
    )
    max_attempts: int = Field(default=3, description="HTTP attempts inside one step attempt.")
    initial_backoff_s: float = 2
    max_backoff_s: float = 60
    max_retry_delay_s: float = Field(default=120, description="Cap on the server's retryDelay.")
    fallback_to_local: bool = False
    max_requests_per_minute: float | None = Field(
        default=None,
        description="GEMINI_MAX_REQUESTS_PER_MINUTE: the deployment's ceiling (None: Google's "
        "429s teach it); `python -m passport_pipeline.cli.quota set N` changes it live.",
    )
    pacing: bool = Field(
        default=True,
        description="Pace paid calls across the deployment (rate and width, resources/pacing.py).",
    )
    start_rate: float = Field(
        default=START_RATE,
        description="GEMINI_START_RATE: a new deployment's requests a minute while no limit is "
        "set and Google has not yet answered 429 (it grows with usable answers).",
    )
    start_width: int = Field(
        default=START_WIDTH,
        description="GEMINI_START_WIDTH: a run's model calls in flight at first; one more with "
        "each usable answer (a broken model is paid a few calls at a time).",
    )

    _session: requests.Session | None = PrivateAttr(default=None)
    _pacer: Pacer | None = PrivateAttr(default=None)
    # Every wait (a retry's backoff, the pace) goes through ``_wait``: a stop cuts it short;
    # a test puts a clock of its own here (anything with ``sleep(seconds)``).
    _clock: Any = PrivateAttr(default=None)

    def step_modules(self) -> tuple[str, ...]:
        return ("passport_pipeline.resources.gemini", "requests", "tenacity")

    def preflight(self) -> None:
        """A free ``GET models/{model}``: fails the run early on a bad key or unknown model."""
        try:
            self._call_with_retries("GET", f"models/{self.model}", None)
        except _AttemptFailed as failed:
            verdict = failed.verdict
            if verdict.transient:
                raise TransientImageModelError(
                    f"Gemini preflight failed after {failed.attempts} attempts: {verdict.message}"
                ) from None
            # The model cannot be called at all: no user step can succeed.
            raise PermanentImageModelError(
                verdict.message, reason=verdict.reason, halts_run=True
            ) from None

    def generate(
        self,
        request: CoverRequest,
        go_ahead: Callable[[], None] | None = None,
        on_unusable: Callable[[PermanentImageModelError], None] | None = None,
    ) -> GeneratedImage:
        # A place in the run's width for this user, held across all its attempts and until its
        # unusable answers are recorded: a broken model's answers end users (and so halt the
        # run) before more users are asked.
        place = self._pacer.enter() if self._pacer is not None else None
        try:
            return self._generate(request, go_ahead, on_unusable)
        finally:
            if place is not None:
                self._pacer.leave(place)

    def _generate(
        self,
        request: CoverRequest,
        go_ahead: Callable[[], None] | None,
        on_unusable: Callable[[PermanentImageModelError], None] | None,
    ) -> GeneratedImage:
        started = time.monotonic()
        body = protocol.build_generate_body(request.prompt, self.aspect_ratio)
        try:
            image, responses = self._call_with_retries(
                "POST", f"models/{self.model}:generateContent", body, go_ahead
            )
        except _AttemptFailed as failed:
            verdict = failed.verdict
            if (unusable := failed.first_unusable) is not None:
                error = PermanentImageModelError(
                    protocol.unusable_message(unusable, verdict, failed.attempts),
                    reason=unusable.reason,
                    unusable_answer=True,
                    paid_calls=failed.unusable_answers,
                    responses=failed.responses,
                )
                if on_unusable is not None:
                    on_unusable(error)
                raise error from None
            if verdict.transient:
                # Dagster retries the step without metadata: the message carries the tally.
                raise TransientImageModelError(
                    f"{verdict.message} (gave up after {failed.attempts} attempts; "
                    f"{tally_text(failed.responses)})"
                ) from None
            if verdict.status_code == 200 and self.fallback_to_local:
                return self._fallback(request, verdict, failed.attempts)
            raise PermanentImageModelError(
                verdict.message,
                reason=verdict.reason,
                halts_run=verdict.halts_run,
                daily_quota=verdict.daily_quota,
                retry_delay_s=verdict.retry_delay_s if verdict.daily_quota else None,
                # A 200 without an image that is not garbage: the model declined the prompt.
                refused=verdict.status_code == 200,
                responses=failed.responses,
            ) from None
        assert isinstance(image, GeminiImage)  # a POST answer is always read as an image
        metadata: dict[str, str | int | float | bool] = {
            "attempts": len(responses),
            **tally_metadata(responses),
            "latency_s": round(time.monotonic() - started, 3),
            "model_version": image.model_version or self.model,
            "estimated_cost_usd": self.price_per_image_usd,
            "mime_type": image.info.mime_type,
            "width": image.info.width,
            "height": image.info.height,
        }
        tokens = {
            "prompt_tokens": image.prompt_tokens,
            "output_tokens": image.output_tokens,
            "total_tokens": image.total_tokens,
        }
        metadata.update({name: count for name, count in tokens.items() if count is not None})
        return GeneratedImage(
            data=image.data,
            mime_type=image.info.mime_type,
            model=image.model_version or self.model,
            metadata=metadata,
            info=image.info,
        )

    def setup_for_execution(self, context: InitResourceContext) -> None:
        # Paced where the instance keeps its pools: every run and machine of the deployment.
        if self.pacing and context.instance is not None:
            store = PacingStore(
                instance_database_url(context.instance), start_rate=max(1.0, self.start_rate)
            )
            scope = context.run.run_id if context.run is not None else "outside-a-run"
            self._pacer = Pacer(
                store,
                scope,
                self.max_requests_per_minute,
                self._wait,
                max(1, self.start_width),
                check=stop_signal.raise_if_stopped,  # a stopped run waits for nothing
            )

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None
        if self._pacer is not None:
            self._pacer.store.dispose()
            self._pacer = None

    # -- internals -------------------------------------------------------------------------

    def _call_with_retries(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        go_ahead: Callable[[], None] | None = None,
    ) -> tuple[GeminiImage | dict, list[str]]:
        """One call, retried by tenacity while the verdict is transient: (answer, the class of
        each attempt's answer)."""
        # Exponential backoff plus up to one initial backoff of jitter. (Composed, because
        # wait_exponential_jitter's argument names differ across tenacity 9.x releases.)
        backoff = wait_exponential(
            multiplier=self.initial_backoff_s, max=self.max_backoff_s
        ) + wait_random(0, self.initial_backoff_s)

        def wait(state: RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome else None
            delay = error.verdict.retry_delay_s if isinstance(error, _AttemptFailed) else None
            if delay is None:
                return backoff(state)
            # The server's own delay, capped, plus a little jitter so clients spread out.
            delay = min(delay, self.max_retry_delay_s)
            return delay + random.uniform(0, delay * 0.1)

        def before_sleep(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            log.warning(
                "Gemini %s attempt %d of %d failed, retrying in %.2f s: %s",
                path.rsplit(":", 1)[-1] if body is not None else "preflight",
                state.attempt_number,
                self.max_attempts,
                state.upcoming_sleep,
                error,
            )

        count = 0
        unusable: list[Verdict] = []
        responses: list[str] = []

        def attempt() -> GeminiImage | dict:
            nonlocal count
            # No paid call starts once the thread executor's run is stopping (an attempt in
            # flight when the stop came finishes).
            stop_signal.raise_if_stopped()
            pacer = self._pacer if body is not None else None
            call_id = pacer.call() if pacer is not None else None
            try:  # the pace's wait may have been long: still wanted?
                stop_signal.raise_if_stopped()
                if go_ahead is not None:
                    go_ahead()
            except BaseException:
                if call_id is not None:
                    pacer.cancel(call_id)  # never sent: not a paid call
                raise
            count += 1
            outcome, quota_value = Outcome.OTHER, None
            try:
                answer = self._call_once(method, path, body)
                outcome = Outcome.USABLE
                responses.append(OK)
                return answer
            except _AttemptFailed as failed:
                failed.attempts = count
                unusable.extend([failed.verdict] if failed.verdict.unusable else [])
                failed.first_unusable = unusable[0] if unusable else None
                outcome, quota_value = _pace_outcome(failed.verdict), failed.verdict.quota_value
                failed.unusable_answers = len(unusable)
                responses.append(response_class(failed.verdict))
                failed.responses = list(responses)
                raise
            finally:
                if call_id is not None:
                    pacer.done(call_id, outcome, quota_value)

        retrying = Retrying(
            stop=stop_after_attempt(max(1, self.max_attempts)),
            wait=wait,
            retry=retry_if_exception(
                lambda e: (
                    isinstance(e, _AttemptFailed)
                    and protocol.worth_another_try(e.verdict, len(unusable))
                )
            ),
            before_sleep=before_sleep,
            sleep=self._wait,
            reraise=True,
        )
        return retrying(attempt), responses

    def _call_once(self, method: str, path: str, body: dict[str, Any] | None) -> GeminiImage | dict:
        key = self.api_key.strip()  # a trailing newline from a secrets file is harmless
        if not key or not key.isprintable() or " " in key:
            problem = "is empty" if not key else "holds spaces or control characters"
            raise self._failure(
                Verdict(False, "API_KEY_MALFORMED", f"the Gemini API key {problem}", halts_run=True)
            )
        limit = protocol.max_answer_bytes(self.max_image_bytes)
        deadline_s = self.request_deadline_s
        try:
            response = send(
                self._get_session(),
                method,
                f"{self.base_url.rstrip('/')}/v1beta/{path}",
                json_body=body,
                headers={"x-goog-api-key": key},
                timeouts=(self.connect_timeout_s, self.read_timeout_s),
                deadline_s=deadline_s,
                max_bytes=limit,
            )
        except BodyDeadlineExceeded as cut:
            raise self._failure(protocol.deadline_exceeded(deadline_s, cut.received)) from None
        except BodyTooLarge as large:
            raise self._failure(
                protocol.answer_too_large(large.size, limit, large.declared)
            ) from None
        except BodyUndecodable as garbled:
            raise self._failure(protocol.undecodable(garbled.encoding, garbled.received)) from None
        except (requests.RequestException, urllib3.exceptions.HTTPError) as error:
            cut_by = deadline_s if deadline_s < self.read_timeout_s else None
            raise self._failure(protocol.classify_transport_error(error, cut_by)) from None
        try:
            payload = json.loads(response.body)
        except ValueError:  # includes a body that is not UTF-8
            payload = None
        if not 200 <= response.status_code < 300:
            retry_after = response.headers.get("Retry-After")
            raise self._failure(protocol.classify_error(response.status_code, payload, retry_after))
        if body is None:  # preflight: any 2xx is enough
            return payload if isinstance(payload, dict) else {}
        answer = protocol.interpret_generate_answer(payload, self.max_image_bytes)
        if isinstance(answer, Verdict):
            raise self._failure(answer)
        return answer

    def _wait(self, seconds: float) -> None:
        if self._clock is not None:
            self._clock.sleep(seconds)
        else:
            stop_signal.sleep(seconds)

    def _failure(self, verdict: Verdict) -> _AttemptFailed:
        """The verdict as an exception, the key scrubbed from what the server said."""
        message, reason = verdict.message, verdict.reason
        for form in (self.api_key, self.api_key.strip(), repr(self.api_key.strip())[1:-1]):
            if form.strip():
                message, reason = message.replace(form, _REDACTED), reason.replace(form, _REDACTED)
        return _AttemptFailed(replace(verdict, message=message, reason=reason))

    def _fallback(self, request: CoverRequest, verdict: Verdict, attempts: int) -> GeneratedImage:
        log.warning("Gemini gave no image (%s); drawing a local cover instead", verdict.reason)
        local = LocalImageModel().generate(request)
        metadata = {
            **local.metadata,
            "fallback": True,
            "fallback_reason": verdict.reason,
            "fallback_message": verdict.message,
            "gemini_attempts": attempts,
        }
        return GeneratedImage(local.data, local.mime_type, local.model, metadata)

    def _get_session(self) -> requests.Session:
        with _SESSION_LOCK:
            if self._session is None:
                session = requests.Session()
                # Enough pooled connections for many threads sharing one resource.
                adapter = HTTPAdapter(pool_connections=4, pool_maxsize=64)
                session.mount("https://", adapter)
                session.mount("http://", adapter)
                self._session = session
            return self._session


def _pace_outcome(verdict: Verdict) -> Outcome:
    """How an attempt that gave no image moves the pace: a per-minute 429 slows it; a refusal
    is a working model's answer; anything else leaves it."""
    if verdict.rate_limited:
        return Outcome.RATE_LIMITED
    if verdict.status_code == 200 and not verdict.unusable:
        return Outcome.USABLE
    return Outcome.OTHER
