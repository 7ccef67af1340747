"""How fast, and how wide, the deployment calls the image model: the pacing decisions.

Pure logic; ``resources/pacing.py`` keeps the state in the instance's database and applies it
before every paid attempt. Two limits, besides the pool's 50 steps in flight:

- **A rate** (requests a minute, for the whole deployment), kept by spacing the starts at
  least 60 s / rate apart, so that no 60 s window ever holds more. With
  ``GEMINI_MAX_REQUESTS_PER_MINUTE`` set, it never goes above it. Without, it starts at
  ``GEMINI_START_RATE`` and grows as answers come back usable (slow start: +``SLOW_START_STEP``
  a usable answer), until Google first answers a per-minute 429. Then it drops by half
  (multiplicative decrease, at most once a minute: a burst of 429s is one event), the quota's
  own value (``QuotaFailure.violations[].quotaValue``) becomes its ceiling, and it climbs back
  by one a usable answer (additive increase), never above the ceiling or the configured limit.
- **A width** (model calls of one month in flight at once). A month starts at ``START_WIDTH``
  and widens by one with each usable answer, so a model that answers only garbage is paid for
  a few calls at a time until the run's breaker halts it, however wide the pool is.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

START_RATE = 60.0  # requests a minute, before anything is known (a start a second)
SLOW_START_STEP = 2.0  # added to the rate by each usable answer until the first 429
AVOIDANCE_STEP = 1.0  # added by each usable answer after it
DECREASE = 0.5  # the rate's factor on a per-minute 429
START_WIDTH = 4
WINDOW_S = 60.0
# Starts are spaced a little wider than 60 s / rate: a request that reaches Google a few
# milliseconds sooner than the one a minute before it must not make the minute hold one more.
SPACING_MARGIN = 1.01


@dataclass(frozen=True)
class Pace:
    """The deployment's pace: the configured limit, the current rate, what Google told us."""

    limit: float | None = None  # GEMINI_MAX_REQUESTS_PER_MINUTE; None: none configured
    rate: float = START_RATE
    ceiling: float | None = None  # the per-minute quota's value, from Google's last 429
    slow_start: bool = True
    decreased_at: float | None = None  # when the rate was last halved (seconds since epoch)

    @property
    def allowed(self) -> float:
        """Requests that may start in any 60 s window now (at least one)."""
        bounds = [self.rate, *(b for b in (self.limit, self.ceiling) if b is not None)]
        return max(1.0, min(bounds))

    def describe(self) -> str:
        """One line for people, as the progress CLI and the run tag show it."""
        said = f"{self.allowed:.0f}/min"
        if self.limit is not None:
            said += f" (limit {self.limit:.0f})"
        if self.ceiling is not None:
            said += f", Google's quota {self.ceiling:.0f}/min"
        return said + (", slow start" if self.slow_start else "")


def start(limit: float | None, start_rate: float = START_RATE) -> Pace:
    """A deployment's first pace: at the configured limit, or a slow start without one."""
    if limit is not None and limit <= 0:
        raise ValueError(f"the requests-per-minute limit must be positive, not {limit}")
    return Pace(limit=limit, rate=limit if limit is not None else start_rate)


def with_limit(pace: Pace, limit: float | None) -> Pace:
    """The operator changed the limit (or removed it): the rate follows at once."""
    if limit is not None and limit <= 0:
        raise ValueError(f"the requests-per-minute limit must be positive, not {limit}")
    rate = min(pace.rate, limit) if limit is not None else pace.rate
    return replace(pace, limit=limit, rate=rate)


def after_usable(pace: Pace) -> Pace:
    """A usable answer came back: the rate climbs (fast before the first 429, then by one)."""
    step = SLOW_START_STEP if pace.slow_start else AVOIDANCE_STEP
    bounds = [b for b in (pace.limit, pace.ceiling) if b is not None]
    rate = pace.rate + step
    return replace(pace, rate=min([rate, *bounds]) if bounds else rate)


def after_rate_limited(pace: Pace, quota_value: float | None, now: float) -> Pace:
    """Google answered a per-minute 429: its quota becomes the ceiling, and the rate is halved
    (once a minute: the other 429s of the same burst only teach the ceiling)."""
    learned = replace(pace, ceiling=quota_value if quota_value else pace.ceiling)
    if learned.decreased_at is not None and now - learned.decreased_at < WINDOW_S:
        return replace(learned, rate=min(learned.rate, learned.allowed), slow_start=False)
    rate = max(1.0, learned.allowed * DECREASE)
    return replace(learned, rate=rate, slow_start=False, decreased_at=now)


def widen(width: int, most: int) -> int:
    """A usable answer of the month: one more call of it may be in flight."""
    return min(most, width + 1)


def wait_for_rate(last_start: float | None, allowed: float, now: float) -> float:
    """Seconds until one more request may start, the last having started at ``last_start``:
    starts are spaced 60 s / ``allowed`` apart (and a little more)."""
    if last_start is None:
        return 0.0
    return max(0.0, last_start + WINDOW_S / allowed * SPACING_MARGIN - now)


def pace_line(pace: Pace | None, width: int | None) -> str | None:
    """``pace 42/min, width 12`` as the progress line and CLI show it (None: nothing paced)."""
    if pace is None:
        return None
    said = f"pace {pace.allowed:.0f}/min"
    return said + (f", width {width}" if width is not None else "")
