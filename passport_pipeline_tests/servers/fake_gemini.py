"""A real local HTTP server that answers like Gemini's REST API, with scripted faults.

    with FakeGemini(api_keys=["test-key"], latency_s=0.2) as server:
        server.script([503, 503, "ok"])                          # every generate request
        server.script([Reply.rate_limited("1s")], prompt_contains="Busan")
        model = GeminiImageModel(api_key="test-key", base_url=server.base_url)
        ...
        assert server.generate_requests == 3

A rule's replies are used in order; once they run out its last reply repeats. Rules are tried
in the order they were added; a request that no rule matches gets an image. Latency applies to
200 answers (a generation); ``error_latency_s`` to error answers.
"""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from PIL import Image

DEFAULT_MODEL = "gemini-2.5-flash-image"
ASPECT_RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")
_STATUSES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
             404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL",
             503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}  # fmt: skip
_MESSAGES = {
    429: "You exceeded your current quota, please check your plan and billing details.",
    500: "An internal error has occurred. Please retry or report in "
    "https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
    504: "Deadline expired before operation could complete.",
}
_RPC = "type.googleapis.com/google.rpc."


@dataclass(frozen=True)
class Reply:
    """One scripted answer. Build them with the class methods."""

    kind: str  # image | error | no_image | blocked | corrupt | hang | disconnect
    status: int = 200
    body: dict[str, Any] | None = None
    reason: str = ""
    seconds: float = 0.0

    @classmethod
    def ok(cls) -> Reply:
        return cls("image")

    @classmethod
    def error(cls, code: int, message: str | None = None, details: Sequence[dict] = ()) -> Reply:
        status = _STATUSES.get(code, "UNKNOWN")
        return cls("error", code, google_error(code, status, message, details))

    @classmethod
    def rate_limited(cls, retry_delay: str | None = "1s") -> Reply:
        quota = {"quotaMetric": "generativelanguage.googleapis.com/generate_content_requests",
                 "quotaId": "GenerateRequestsPerMinutePerProjectPerModel", "quotaValue": "10"}
        details = [{"@type": _RPC + "QuotaFailure", "violations": [quota]}]
        if retry_delay is not None:
            details.append({"@type": _RPC + "RetryInfo", "retryDelay": retry_delay})
        return cls.error(429, details=details)

    @classmethod
    def daily_quota(cls, retry_delay: str = "17s") -> Reply:
        quota = {"quotaMetric": "generativelanguage.googleapis.com/generate_content_requests",
                 "quotaId": "GenerateRequestsPerDayPerProjectPerModel", "quotaValue": "100"}
        return cls.error(429, details=[{"@type": _RPC + "QuotaFailure", "violations": [quota]},
                                       {"@type": _RPC + "RetryInfo", "retryDelay": retry_delay}])

    @classmethod
    def no_image(cls, finish_reason: str = "IMAGE_SAFETY") -> Reply:
        return cls("no_image", reason=finish_reason)

    @classmethod
    def blocked(cls, block_reason: str = "PROHIBITED_CONTENT") -> Reply:
        return cls("blocked", reason=block_reason)

    @classmethod
    def corrupt_image(cls, invalid_base64: bool = False) -> Reply:
        return cls("corrupt", reason="base64" if invalid_base64 else "bytes")

    @classmethod
    def hang(cls, seconds: float) -> Reply:
        """Say nothing for ``seconds`` (longer than the client's read timeout), then hang up."""
        return cls("hang", seconds=seconds)

    @classmethod
    def disconnect(cls) -> Reply:
        return cls("disconnect")


def as_reply(value: Reply | int | str) -> Reply:
    """Shorthands: ``"ok"`` is an image, a number an error answer with that HTTP status."""
    if isinstance(value, Reply):
        return value
    if value == "ok":
        return Reply.ok()
    if isinstance(value, int):
        return Reply.error(value)
    raise ValueError(f"not a reply: {value!r}")


def google_error(code: int, status: str, message: str | None, details: Sequence[dict] = ()):
    text = message or _MESSAGES.get(code, status.replace("_", " ").lower())
    return {"error": {"code": code, "message": text, "status": status, "details": list(details)}}


@dataclass
class Rule:
    replies: list[Reply]
    prompt_contains: str | None = None
    per_prompt: bool = False  # each distinct prompt walks the replies on its own
    endpoint: str = "generate"  # or "get" (models.get, the client's preflight)
    name: str = "all"
    _taken: Counter = field(default_factory=Counter)

    def matches(self, endpoint: str, prompt: str) -> bool:
        return endpoint == self.endpoint and (
            self.prompt_contains is None or self.prompt_contains in prompt
        )

    def take(self, prompt: str) -> Reply:
        key = prompt if self.per_prompt else ""
        index = min(self._taken[key], len(self.replies) - 1)
        self._taken[key] += 1
        return self.replies[index]


@dataclass
class RecordedRequest:
    endpoint: str
    model: str
    prompt: str
    aspect_ratio: str | None
    key: str | None
    start: float  # time.monotonic()
    end: float | None = None
    rule: str | None = None
    reply: str = ""


class FakeGemini:
    def __init__(self, *, api_keys: Iterable[str] = ("test-key",),
                 models: Iterable[str] = (DEFAULT_MODEL,), latency_s: float = 0.0,
                 error_latency_s: float = 0.0, image_format: str = "png",
                 text_before_image: bool = True, echo_key_in_errors: bool = False,
                 request_queue_size: int = 128):  # fmt: skip
        self.api_keys = set(api_keys)
        self.models = set(models)
        self.latency_s = latency_s
        self.error_latency_s = error_latency_s
        self.image_format = image_format
        self.text_before_image = text_before_image
        self.echo_key_in_errors = echo_key_in_errors  # to prove the client scrubs messages
        self.rules: list[Rule] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.reset()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler, bind_and_activate=False)
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False
        self._httpd.request_queue_size = request_queue_size
        self._httpd.fake = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FakeGemini:
        self._httpd.server_bind()
        self._httpd.server_activate()
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True,
                                        kwargs={"poll_interval": 0.05}, name="fake-gemini")
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> FakeGemini:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    # -- scripting ---------------------------------------------------------------------------

    def script(self, replies: Sequence[Reply | int | str], *, prompt_contains: str | None = None,
               per_prompt: bool = False, endpoint: str = "generate",
               name: str | None = None) -> Rule:  # fmt: skip
        if not replies:
            raise ValueError("a rule needs at least one reply")
        rule = Rule([as_reply(r) for r in replies], prompt_contains, per_prompt, endpoint,
                    name or prompt_contains or f"{endpoint}-all")  # fmt: skip
        with self.lock:
            self.rules.append(rule)
        return rule

    def clear_rules(self) -> None:
        with self.lock:
            self.rules.clear()

    # -- counters ------------------------------------------------------------------------------

    def reset(self) -> None:
        with self.lock:
            self.records: list[RecordedRequest] = []
            self.rule_counts: Counter[str] = Counter()
            self.keys_seen: Counter[str] = Counter()
            self.keys_in_url = 0
            self.in_flight = 0
            self.max_in_flight = 0

    @property
    def generate_requests(self) -> int:
        return sum(r.endpoint == "generate" for r in self.records)

    @property
    def get_requests(self) -> int:
        return sum(r.endpoint == "get" for r in self.records)

    def requests_for(self, prompt_contains: str) -> int:
        return sum(r.endpoint == "generate" and prompt_contains in r.prompt for r in self.records)

    def intervals(self) -> list[tuple[float, float | None]]:
        """(start, end) in time.monotonic() of every generate request, in arrival order."""
        with self.lock:
            return [(r.start, r.end) for r in self.records if r.endpoint == "generate"]

    # -- answering (called by the handler threads) -----------------------------------------------

    def begin(self, record: RecordedRequest, in_url: bool) -> Reply | None:
        """Record a request; return the scripted reply, or None when no rule matches."""
        with self.lock:
            self.records.append(record)
            if record.key is not None:
                self.keys_seen[record.key] += 1
            self.keys_in_url += in_url
            if record.endpoint == "generate":
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
            for rule in self.rules:
                if rule.matches(record.endpoint, record.prompt):
                    self.rule_counts[rule.name] += 1
                    record.rule = rule.name
                    return rule.take(record.prompt)
        return None

    def finish(self, record: RecordedRequest, reply: str) -> None:
        with self.lock:
            record.end, record.reply = time.monotonic(), reply
            if record.endpoint == "generate":
                self.in_flight -= 1

    def pause(self, seconds: float) -> None:
        if seconds > 0:
            self.stopping.wait(seconds)


@lru_cache(maxsize=32)
def portrait_image(image_format: str, aspect_ratio: str = "3:4") -> bytes:
    """A small real image (96 px on the short side) in the requested format."""
    across, down = (int(n) for n in aspect_ratio.split(":"))
    short = 96
    size = (short, round(short * down / across)) if down >= across else (
        round(short * across / down), short)  # fmt: skip
    image = Image.linear_gradient("L").resize(size).convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format={"jpg": "JPEG"}.get(image_format, image_format.upper()))
    return buffer.getvalue()


from passport_pipeline_tests.servers._gemini_handler import _Handler  # noqa: E402
