"""The fake Gemini's quotas: a per-minute and a per-day window, enforced as Google does.

    with FakeGemini() as server:
        server.quotas = Quotas(per_minute=60, per_day=1000, clock=clock)

Per minute: a sliding 60 s window of accepted generate requests; the request that would make
it ``per_minute + 1`` is answered 429 with Google's body (QuotaFailure naming the per-minute
quota and its value, Help, RetryInfo: when the window's oldest request leaves it). Per day: a
count of accepted requests per calendar day in Pacific time (Google resets daily quotas at
midnight there); over it, 429 naming the per-day and the per-minute quotas, with RetryInfo
until the next Pacific midnight. Rejected requests use no quota. ``clock`` (seconds since the
epoch) is injected so that tests move time instead of sleeping.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

PACIFIC = ZoneInfo("America/Los_Angeles")


@dataclass
class Quotas:
    per_minute: int | None = None
    per_day: int | None = None
    clock: Callable[[], float] = time.time
    rejected_minute: int = 0  # 429s for the per-minute quota
    rejected_day: int = 0  # 429s for the per-day quota
    _window: deque = field(default_factory=deque)
    _days: dict = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def admit(self) -> tuple[str, int, float] | None:
        """Count a generate request, or say which quota refuses it: (window, value, retry s)."""
        with self._lock:
            now = self.clock()
            day = datetime.fromtimestamp(now, PACIFIC).date()
            while self._window and self._window[0] <= now - 60:
                self._window.popleft()
            if self.per_day is not None and self._days.get(day, 0) >= self.per_day:
                self.rejected_day += 1
                return "PerDay", self.per_day, _until_pacific_midnight(now)
            if self.per_minute is not None and len(self._window) >= self.per_minute:
                self.rejected_minute += 1
                return "PerMinute", self.per_minute, self._window[0] + 60 - now
            self._window.append(now)
            self._days[day] = self._days.get(day, 0) + 1
            return None


def _until_pacific_midnight(now: float) -> float:
    local = datetime.fromtimestamp(now, PACIFIC)
    midnight = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), PACIFIC)
    return midnight.timestamp() - now


def retry_delay(seconds: float) -> str:
    """A protobuf Duration as Google writes RetryInfo.retryDelay (whole seconds: "17s")."""
    return f"{max(1, math.ceil(seconds))}s"
