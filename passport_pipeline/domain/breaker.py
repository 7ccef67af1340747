"""When answers that are no image mean the model is broken for everyone: the run halts.

A model that answers 200 with bytes that do not decode (or truncated JSON, or an HTML page)
usually does so for every user: each costs 2 paid calls (one retry) and no cover. One bad
user among good ones must not stop a month, so the run halts only on a streak: the last
``HALT_AFTER_UNUSABLE`` users whose model call ended all got the same unusable answer, with no
new cover among them. Pure logic; ``passport_pipeline/covers/breaker.py`` reads the outcomes.
"""

from __future__ import annotations

from collections.abc import Sequence

GENERATED = "generated"  # an outcome: the model drew the user's new cover
HALT_AFTER_UNUSABLE = 10


def unusable_streak(outcomes: Sequence[str], threshold: int = HALT_AFTER_UNUSABLE) -> str | None:
    """The unusable answer's reason to halt on, or None.

    ``outcomes``: the run's model outcomes, oldest first: GENERATED, or the reason of a user
    who failed on an unusable answer (INVALID_IMAGE, BAD_RESPONSE, IMAGE_TOO_LARGE)."""
    if threshold < 1:
        raise ValueError(f"the threshold must be at least 1, not {threshold}")
    last = list(outcomes[-threshold:])
    if len(last) < threshold or last[0] == GENERATED:
        return None
    return last[0] if all(outcome == last[0] for outcome in last) else None


def halt_reason(reason: str, threshold: int, example: str) -> str:
    """What the halted steps say: the streak, the reason, one user's full message."""
    return (
        f"the image model's last {threshold} answers that ended a user were all unusable "
        f"({reason}), so it is not called again in this run; the last one: {example}"
    )
