"""How each of Gemini's answers to a paid call is counted (the exporter's
``passport_gemini_responses_total{class}``), and how the counts travel in the event log.

The client tallies the class of every attempt of one user's call; the tally is durable in the
step's output metadata (``gemini_<class>`` entries), a permanent failure's metadata, or, for a
call that gave up on transient errors (which Dagster retries as a step, without metadata), the
error's message (``responses: rate_limited=3``).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping

from passport_pipeline.domain.gemini_protocol import Verdict

OK = "ok"
RATE_LIMITED = "rate_limited"
DAILY_QUOTA = "daily_quota"
TRANSIENT = "transient"
REFUSED = "refused"
UNUSABLE = "unusable"
PERMANENT = "permanent"
RESPONSE_CLASSES = (OK, RATE_LIMITED, DAILY_QUOTA, TRANSIENT, REFUSED, UNUSABLE, PERMANENT)
DAILY_QUOTA_REASON = "DAILY_QUOTA_EXHAUSTED"
METADATA_PREFIX = "gemini_"
_TEXT = re.compile(r"responses: ((?:[a-z_]+=\d+(?:, )?)+)")


def response_class(verdict: Verdict) -> str:
    """The class of one attempt that gave no image."""
    if verdict.rate_limited:
        return RATE_LIMITED
    if verdict.reason == DAILY_QUOTA_REASON:
        return DAILY_QUOTA
    if verdict.unusable:
        return UNUSABLE
    if verdict.status_code == 200:
        return REFUSED  # a 200 without an image that is not garbage: the model declined
    return TRANSIENT if verdict.transient else PERMANENT


def tally_metadata(classes: Iterable[str]) -> dict[str, int]:
    """A call's attempts as metadata entries: ``{"gemini_ok": 1, "gemini_rate_limited": 2}``."""
    return {f"{METADATA_PREFIX}{name}": count for name, count in sorted(Counter(classes).items())}


def tally_from_metadata(metadata: Mapping[str, object]) -> Counter:
    """The tally ``tally_metadata`` wrote, from a step's metadata values."""
    counts: Counter = Counter()
    for name in RESPONSE_CLASSES:
        value = metadata.get(f"{METADATA_PREFIX}{name}")
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            counts[name] += value
    return counts


def tally_text(classes: Iterable[str]) -> str:
    """A call's attempts for an error message: ``responses: rate_limited=2, transient=1``."""
    counts = sorted(Counter(classes).items())
    return "responses: " + ", ".join(f"{name}={count}" for name, count in counts)


def tally_from_text(message: str) -> Counter:
    """The tally ``tally_text`` wrote into a message; empty if there is none."""
    match = _TEXT.search(message or "")
    counts: Counter = Counter()
    if match:
        for part in match.group(1).split(", "):
            name, _, count = part.partition("=")
            if name in RESPONSE_CLASSES and count:
                counts[name] += int(count)
    return counts
