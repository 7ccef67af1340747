"""Image models: the interface every model keeps, and the local Pillow renderer."""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum

from dagster import ConfigurableResource

from passport_pipeline.domain.records import CoverRequest, GeneratedImage


class AspectRatio(StrEnum):
    """The image shapes Gemini draws. In run config the Launchpad shows a member's *name*
    (``RATIO_3_4``): a YAML 1.1 reader takes a plain ``3:4`` for the base-60 integer 184, and the
    Launchpad's own round trip of the scaffold wrote it plain. The value is what is sent."""

    RATIO_1_1 = "1:1"
    RATIO_2_3 = "2:3"
    RATIO_3_2 = "3:2"
    RATIO_3_4 = "3:4"
    RATIO_4_3 = "4:3"
    RATIO_4_5 = "4:5"
    RATIO_5_4 = "5:4"
    RATIO_9_16 = "9:16"
    RATIO_16_9 = "16:9"
    RATIO_21_9 = "21:9"


class ImageModelError(Exception):
    """An image model could not produce a cover."""


class TransientImageModelError(ImageModelError):
    """Worth another try later: timeouts, 5xx, 429 with a per-minute quota."""


class PermanentImageModelError(ImageModelError):
    """Another try gives the same answer: refused content, a daily quota, a bad request.

    ``refused`` marks a model that declined this user's prompt (a safety filter): an expected,
    final answer for the month, recorded as the user's outcome rather than a failed step.
    ``halts_run`` marks answers that no other user's step can succeed against either
    (a bad API key, an unknown model): the run stops calling the model after the first one.
    ``unusable_answer`` marks a model that answered, twice, with something that is no usable
    image: one such user is not retried; many in a row halt the run (domain/breaker.py).
    ``daily_quota`` marks a per-day quota used up (it halts the run too): the month resumes
    after the quota's reset, or after ``retry_delay_s`` when Google gave one
    (domain/quota_days.py).
    """

    def __init__(
        self,
        message: str,
        *,
        reason: str,
        halts_run: bool = False,
        unusable_answer: bool = False,
        refused: bool = False,
        responses: list[str] | None = None,
        paid_calls: int = 0,
        daily_quota: bool = False,
        retry_delay_s: float | None = None,
    ):
        super().__init__(message)
        self.daily_quota = daily_quota
        self.retry_delay_s = retry_delay_s
        # Answers the model made before giving up (unusable ones): paid for, so in the cost.
        self.paid_calls = paid_calls
        self.reason = reason
        self.refused = refused
        self.halts_run = halts_run
        self.unusable_answer = unusable_answer
        # The class of every attempt's answer (domain/gemini_responses.py), for the metrics.
        self.responses = list(responses or [])


class ImageModel(ConfigurableResource):
    """Turns a cover request into image bytes."""

    def preflight(self) -> None:
        """Check, before any user step runs, that the model can be called at all (free)."""

    def step_modules(self) -> tuple[str, ...]:
        """Modules a cover step imports only when it first calls this model (see executor.py)."""
        return ()

    def generate(
        self,
        request: CoverRequest,
        go_ahead: Callable[[], None] | None = None,
        on_unusable: Callable[[PermanentImageModelError], None] | None = None,
    ) -> GeneratedImage:
        """The cover for ``request``. ``go_ahead`` is asked right before each paid call (after
        any wait for the pace): it raises to call no more (a halted run). ``on_unusable`` is
        told of answers that were no image before they are raised, while this user still holds
        its place among the calls in flight, so the next user is asked only after they count."""
        raise NotImplementedError


class LocalImageModel(ImageModel):
    """Draws a real passport cover from the month's visits with Pillow: no network, no cost."""

    width: int = 768
    height: int = 1024

    def step_modules(self) -> tuple[str, ...]:
        return ("passport_pipeline.render.cover",)

    def generate(
        self,
        request: CoverRequest,
        go_ahead: Callable[[], None] | None = None,
        on_unusable: Callable[[PermanentImageModelError], None] | None = None,
    ) -> GeneratedImage:
        # Imported here so that a Gemini-only deployment's steps never load the renderer.
        from passport_pipeline.render.cover import render_cover

        started = time.monotonic()
        data = render_cover(request, width=self.width, height=self.height)
        return GeneratedImage(
            data=data,
            mime_type="image/png",
            model="local-renderer",
            metadata={
                "latency_s": round(time.monotonic() - started, 3),
                "attempts": 1,
                "estimated_cost_usd": 0.0,
            },
        )
