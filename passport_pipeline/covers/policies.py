"""Retry policy for a user's step, and the bound on paid image-model calls it implies.

Two layers retry, each for what it is good at:
- inside one step attempt, the Gemini client (tenacity) retries a transient answer up to
  ``GeminiImageModel.max_attempts`` (3) times, honouring the server's retry delay;
- Dagster retries the whole step (a new attempt, with the client's fresh connections)
  ``COVER_STEP_RETRIES`` (2)
  more times with exponential backoff and jitter when the step still ends in a transient error.

So a transient fault costs one user at most 3 * (1 + 2) = 9 calls in a run, and usually 1 (a
5xx or 429 answer is not billed; a timeout may be). Permanent answers (bad key, refused
content, daily quota, a user with no passport) are not retried by either layer. An answer that
is no usable image (bytes that do not decode, a body that is not JSON, an image over
``PASSPORT_MAX_IMAGE_BYTES``) is billed like an image: the client asks again once, then fails
the user for good, so it costs at most 2 paid calls per user; and when the last
``domain.breaker.HALT_AFTER_UNUSABLE`` users all got the same such answer the run halts, as it
does for a revoked key (at most 2 * (10 + concurrent steps - 1) paid calls in all).
"""

from dagster import Backoff, Jitter, RetryPolicy

COVER_STEP_RETRIES = 2


def cover_retry_policy(delay_s: float = 10) -> RetryPolicy:
    """Waits about ``delay_s``, then twice that, between the attempts of a user's step."""
    return RetryPolicy(
        max_retries=COVER_STEP_RETRIES,
        delay=delay_s,
        backoff=Backoff.EXPONENTIAL,
        jitter=Jitter.PLUS_MINUS,
    )
