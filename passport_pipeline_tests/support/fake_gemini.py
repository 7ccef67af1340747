"""A real local HTTP server that answers like Gemini's REST API, with scripted faults.

    with FakeGemini(api_keys=["test-key"], latency_s=0.2) as server:
        server.script([Reply.rate_limited("1s"), "ok"], prompt_contains="Busan")
        server.script([503, 503, "ok"])  # every other generate request
        model = GeminiImageModel(api_key="test-key", base_url=server.base_url)
        ...
        assert server.generate_requests == 3 and server.max_in_flight == 1

Endpoints: ``POST /v1beta/models/{model}:generateContent`` and ``GET /v1beta/models/{model}``.
The key (``x-goog-api-key`` header or ``?key=``) and the model are checked first, as Google does.
A rule's replies are used in order; once they run out its last reply repeats. Rules are tried
in the order they were added; a request no rule matches gets an image. ``latency_s`` delays
200 answers of generateContent (a generation), ``error_latency_s`` error answers;
``answer_when_in_flight = n`` holds every generation until n of them are in flight at once (or
``gather_timeout_s`` has passed), so a test of concurrency needs no timing at all.
``hold_answers()`` holds every generation's answer until ``release_answers`` lets one prompt's
(or all) go: a test can act while a call is in flight without a time window.
Each request's record says how many body bytes were sent and whether the client hung up.

Answers go on the wire as Google's front end sends them (``support/google_wire.py``): chunked,
gzip-compressed whenever the client offers gzip, images at the model's real size (a 1.7 MB PNG
for 3:4). ``wire="plain"`` is the old behaviour (Content-Length, never compressed), for a test
that needs a declared length.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from passport_pipeline_tests.support import google_wire as wire

# The Batch API (batches, files); that module imports this one only inside its functions.
from passport_pipeline_tests.support.fake_gemini_batch import FakeBatches, serve_batch
from passport_pipeline_tests.support.fake_quotas import Quotas, retry_delay

DEFAULT_MODEL = "gemini-2.5-flash-image"
ASPECT_RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")
RPC = "type.googleapis.com/google.rpc."
STATUSES = {
    **{400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED"},
    **{404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL"},
    **{502: "UNAVAILABLE", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"},
}
MESSAGES = {
    400: "API key not valid. Please pass a valid API key.",
    403: "Method doesn't allow unregistered callers (callers without established identity). "
    "Please use API Key or other form of API consumer identity to call this API.",
    404: "models/{model} is not found for API version v1beta, or is not supported for "
    "generateContent. Call ListModels to see the list of available models.",
    429: "You exceeded your current quota, please check your plan and billing details.",
    500: "An internal error has occurred. Please retry or report in "
    "https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
    504: "Deadline expired before operation could complete.",
}
THOUGHT_SIGNATURE = "Cp0BAdHtim9vY2tlZCB0aG91Z2h0IHNpZ25hdHVyZSBvZiB0aGUgZmFrZQ=="
KEY_INVALID = {
    "@type": RPC + "ErrorInfo",
    "reason": "API_KEY_INVALID",
    "domain": "googleapis.com",
    "metadata": {"service": "generativelanguage.googleapis.com"},
}


def google_error(code: int, message: str | None = None, details: Sequence[dict] = ()) -> dict:
    """Google's documented error body (``details`` left out when empty, as proto3 JSON does)."""
    status = STATUSES.get(code, "UNKNOWN")
    text = message or MESSAGES.get(code, status.replace("_", " ").lower())
    error: dict[str, Any] = {"code": code, "message": text, "status": status}
    if details:
        error["details"] = list(details)
    return {"error": error}


QUOTA_HELP = {
    "@type": RPC + "Help",
    "links": [
        {
            "description": "Learn more about Gemini API quotas",
            "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
        }
    ],
}
PER_MINUTE, PER_DAY = "PerMinute", "PerDay"


def quota_violation(window: str, model: str = DEFAULT_MODEL, value: int = 10) -> dict:
    """One QuotaFailure violation as Google lists them (per-day ids end in ``PerDay…``)."""
    return {
        "quotaMetric": "generativelanguage.googleapis.com/generate_content_requests",
        "quotaId": f"GenerateRequests{window}PerProjectPerModel",
        "quotaDimensions": {"location": "global", "model": model},
        "quotaValue": str(value),
    }


def quota_details(
    windows: Sequence[str], retry_delay: str | None, values: Sequence[int] = ()
) -> list[dict]:
    """A 429's details as Google sends them: QuotaFailure (one violation per window hit, with
    the quota's value), Help, and RetryInfo unless ``retry_delay`` is None."""
    values = list(values) or [10] * len(windows)
    violations = [
        quota_violation(window, value=v) for window, v in zip(windows, values, strict=True)
    ]
    details = [{"@type": RPC + "QuotaFailure", "violations": violations}, QUOTA_HELP]
    if retry_delay is not None:
        details.append({"@type": RPC + "RetryInfo", "retryDelay": retry_delay})
    return details


@dataclass(frozen=True)
class Reply:
    """One scripted answer; build it with the class methods (or the shorthands of as_reply)."""

    kind: str  # image | error | no_image | blocked | corrupt | hang | disconnect | drip | raw
    status: int = 200
    body: dict[str, Any] | None = None
    reason: str = ""
    seconds: float = 0.0
    limit_s: float = 0.0
    size: int = 0

    @classmethod
    def ok(cls) -> Reply:
        return cls("image")

    @classmethod
    def error(cls, code: int, message: str | None = None, details: Sequence[dict] = ()) -> Reply:
        return cls("error", code, google_error(code, message, details))

    @classmethod
    def rate_limited(cls, retry_delay: str | None = "1s", quota_value: int = 10) -> Reply:
        """429 for a per-minute quota of ``quota_value`` requests (which the client's pacing
        learns), with RetryInfo.retryDelay unless None."""
        return cls.error(429, details=quota_details([PER_MINUTE], retry_delay, [quota_value]))

    @classmethod
    def quota(cls, window: str, value: int, retry_s: float) -> Reply:
        """What ``Quotas`` answers for a request over ``window``'s quota of ``value``."""
        windows, values = ([PER_DAY, PER_MINUTE], [value, 10]) if window == PER_DAY else (
            [PER_MINUTE], [value])  # fmt: skip
        details = quota_details(windows, retry_delay(retry_s), values)
        return cls.error(429, details=details)

    @classmethod
    def daily_quota(cls, retry_delay: str | None = "17s") -> Reply:
        """429 for a per-day quota, as real ones come: the per-day and the per-minute
        violations both listed, Help, and RetryInfo unless None."""
        return cls.error(429, details=quota_details([PER_DAY, PER_MINUTE], retry_delay))

    @classmethod
    def no_image(cls, finish_reason: str = "IMAGE_SAFETY") -> Reply:
        """200 whose candidate has this finishReason and no parts."""
        return cls("no_image", reason=finish_reason)

    @classmethod
    def blocked(cls, block_reason: str = "PROHIBITED_CONTENT") -> Reply:
        """200 with promptFeedback.blockReason and no candidates."""
        return cls("blocked", reason=block_reason)

    @classmethod
    def corrupt_image(cls, invalid_base64: bool = False) -> Reply:
        """200 whose image is truncated bytes (or, with invalid_base64, not base64 at all)."""
        return cls("corrupt", reason="base64" if invalid_base64 else "bytes")

    @classmethod
    def truncated_json(cls) -> Reply:
        """200 whose body is the first half of an image answer's JSON (its length says so)."""
        return cls("raw", reason="truncated_json")

    @classmethod
    def html(cls) -> Reply:
        """200 with an HTML page, as a proxy or captive portal in front of the API answers."""
        return cls("raw", reason="html")

    @classmethod
    def oversize(cls, size: int) -> Reply:
        """An image answer with a text part of ``size`` more bytes."""
        return cls("image", size=size)

    @classmethod
    def bomb(cls, inflated_bytes: int = 1 << 30) -> Reply:
        """200 whose gzip body (about a thousandth of its size) inflates to ``inflated_bytes``
        of JSON whitespace: a decompression bomb (sent gzip even to a client that did not ask)."""
        return cls("bomb", size=inflated_bytes)

    @classmethod
    def garbled_gzip(cls) -> Reply:
        """200 that says ``Content-Encoding: gzip`` but whose bytes are no gzip."""
        return cls("raw", reason="garbled_gzip")

    @classmethod
    def drip(cls, seconds_per_byte: float, limit_s: float = 30.0) -> Reply:
        """Send an image answer's headers, then its body one byte every ``seconds_per_byte``;
        hang up after ``limit_s`` if the body is not done by then."""
        return cls("drip", seconds=seconds_per_byte, limit_s=limit_s)

    @classmethod
    def hang(cls, seconds: float) -> Reply:
        """Say nothing for ``seconds`` (longer than the client's read timeout), then hang up."""
        return cls("hang", seconds=seconds)

    @classmethod
    def disconnect(cls) -> Reply:
        """Close the connection without sending a status line."""
        return cls("disconnect")


def as_reply(value: Reply | int | str) -> Reply:
    """Shorthands: ``"ok"`` is an image, a number is an error answer with that HTTP status."""
    if isinstance(value, Reply):
        return value
    if value == "ok":
        return Reply.ok()
    if isinstance(value, int):
        return Reply.error(value)
    raise ValueError(f"not a reply: {value!r}")


@dataclass
class Rule:
    replies: list[Reply]
    prompt_contains: str | None = None  # None: every request of the endpoint
    per_prompt: bool = False  # each distinct prompt walks the replies on its own
    endpoint: str = "generate"  # or "get" (models.get, the preflight), "batch" (a batch's)
    name: str = "all"
    taken: Counter[str] = field(default_factory=Counter)

    def matches(self, endpoint: str, prompt: str) -> bool:
        wanted = self.prompt_contains
        return endpoint == self.endpoint and (wanted is None or wanted in prompt)

    def take(self, prompt: str) -> Reply:
        key = prompt if self.per_prompt else ""
        self.taken[key] += 1
        return self.replies[min(self.taken[key], len(self.replies)) - 1]


@dataclass
class RecordedRequest:
    endpoint: str  # generate | get | batch (one request of a batch, answered)
    model: str
    prompt: str
    aspect_ratio: str | None
    key: str | None
    start: float  # time.monotonic()
    end: float | None = None
    rule: str | None = None
    outcome: str = ""  # a Reply kind, model (a models.get), or cut (the client hung up mid-body)
    body_bytes: int = 0  # the answer's length, decoded
    bytes_sent: int = 0  # how much of it was on the wire before the client hung up (or all)
    encoding: str = "identity"  # gzip when the answer went compressed
    body: Any = None  # the request's JSON body, as the client sent it


class FakeGemini:
    """Thread-safe counters: records, rule_counts, keys_seen, keys_in_url, (max_)in_flight."""

    def __init__(
        self,
        *,
        api_keys: Iterable[str] = ("test-key",),
        models: Iterable[str] = (DEFAULT_MODEL,),
        latency_s: float = 0.0,
        error_latency_s: float = 0.0,
        image_format: str = "png",  # png | jpeg | webp
        text_before_image: bool = True,
        wire: str = "google",  # google: chunked, gzip when offered; plain: Content-Length
        echo_key_in_errors: bool = False,  # a hostile server, to prove the client scrubs
        request_queue_size: int = 128,
        port: int = 0,  # 0: any free port
    ):
        self.api_keys, self.models = set(api_keys), set(models)
        self.latency_s, self.error_latency_s = latency_s, error_latency_s
        self.image_format, self.text_before_image = image_format, text_before_image
        if wire not in ("google", "plain"):
            raise ValueError(f"wire is google or plain, not {wire!r}")
        self.wire = wire
        self.echo_key_in_errors = echo_key_in_errors
        self.answer_when_in_flight = 0
        self.gather_timeout_s = 10.0
        self.rules: list[Rule] = []
        self.quotas: Quotas | None = None  # Google's per-minute and per-day windows
        self.lock = threading.Lock()
        self.gathered = threading.Condition(self.lock)
        self.stopping = threading.Event()
        self.holding = False
        self.released: list[str] = []  # prompts answered while holding
        self.reset()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), _Handler, bind_and_activate=False)
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False
        self._httpd.request_queue_size = request_queue_size
        self._httpd.fake = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None
        self.batches = FakeBatches(self)

    def start(self) -> FakeGemini:
        self._httpd.server_bind()
        self._httpd.server_activate()
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()  # wakes requests sleeping in latency or a hang
        self.release_answers()
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

    def script(
        self,
        replies: Sequence[Reply | int | str],
        *,
        prompt_contains: str | None = None,
        per_prompt: bool = False,
        endpoint: str = "generate",
        name: str | None = None,
    ) -> Rule:
        """Add a rule: requests whose prompt contains ``prompt_contains`` get ``replies``."""
        if not replies:
            raise ValueError("a rule needs at least one reply")
        name = name or prompt_contains or f"{endpoint}:all"
        rule = Rule([as_reply(r) for r in replies], prompt_contains, per_prompt, endpoint, name)
        with self.lock:
            self.rules.append(rule)
        return rule

    def hold_answers(self) -> None:
        """From now on no generation is answered until ``release_answers`` lets it go."""
        with self.lock:
            self.holding, self.released = True, []

    def release_answers(self, prompt_contains: str | None = None) -> None:
        """Answer the held generations whose prompt contains this text (None: all, and stop
        holding)."""
        with self.gathered:
            if prompt_contains is None:
                self.holding = False
            else:
                self.released.append(prompt_contains)
            self.gathered.notify_all()

    def clear_rules(self) -> None:
        with self.lock:
            self.rules.clear()

    def reset(self) -> None:
        """Zero the counters (rules and their progress stay)."""
        with self.lock:
            self.records: list[RecordedRequest] = []
            self.rule_counts: Counter[str] = Counter()
            self.keys_seen: Counter[str] = Counter()
            self.keys_in_url = self.in_flight = self.max_in_flight = 0

    @property
    def generate_requests(self) -> int:
        with self.lock:
            return sum(r.endpoint == "generate" for r in self.records)

    @property
    def get_requests(self) -> int:
        with self.lock:
            return sum(r.endpoint == "get" for r in self.records)

    def requests_for(self, prompt_contains: str) -> int:
        """Generate requests whose prompt contains this text."""
        with self.lock:
            return sum(
                r.endpoint == "generate" and prompt_contains in r.prompt for r in self.records
            )

    def in_flight_since(self, prompt_contains: str) -> float | None:
        """When (``time.monotonic()``) the newest unanswered generate request whose prompt
        contains this text arrived; None if none is in flight."""
        with self.lock:
            starts = [
                r.start
                for r in self.records
                if r.endpoint == "generate" and r.end is None and prompt_contains in r.prompt
            ]
        return max(starts, default=None)

    def intervals(self) -> list[tuple[float, float | None]]:
        """(start, end) in time.monotonic() of every generate request, in arrival order."""
        with self.lock:
            return [(r.start, r.end) for r in self.records if r.endpoint == "generate"]

    def stats(self) -> dict[str, Any]:
        """Counters and generate intervals as JSON-ready values (the ``GET /_stats`` answer).

        ``intervals`` are ``[start, end]`` in ``time.monotonic()`` (``end`` null while in
        flight); ``monotonic_now`` and ``time_now`` were read together, so
        ``t - monotonic_now + time_now`` turns a stamp into ``time.time()``."""
        with self.lock:
            generate = [r for r in self.records if r.endpoint == "generate"]
            return {
                "generate_requests": len(generate),
                "get_requests": len(self.records) - len(generate),
                "in_flight": self.in_flight,
                "max_in_flight": self.max_in_flight,
                "outcomes": dict(Counter(r.outcome for r in generate)),
                "rejected_by_quota": dict(
                    Counter(r.rule for r in generate if r.rule and r.rule.startswith("quota"))
                ),
                "intervals": [[r.start, r.end] for r in generate],
                "monotonic_now": time.monotonic(),
                "time_now": time.time(),
            }

    # -- called by the handler threads ---------------------------------------------------------

    def begin(self, record: RecordedRequest, key_in_url: bool) -> Reply | None:
        """Count a request; return the scripted reply of the first matching rule, if any."""
        with self.lock:
            self.records.append(record)
            self.keys_seen.update([record.key] if record.key else [])
            self.keys_in_url += key_in_url
            if record.endpoint == "generate":
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
                self.gathered.notify_all()
                refused = self.quotas.admit() if self.quotas is not None else None
                if refused is not None:  # quota first, as Google checks it before the model
                    record.rule = f"quota {refused[0]}"
                    self.rule_counts[record.rule] += 1
                    return Reply.quota(*refused)
            for rule in self.rules:
                if rule.matches(record.endpoint, record.prompt):
                    self.rule_counts[rule.name] += 1
                    record.rule = rule.name
                    return rule.take(record.prompt)
        return None

    def finish(self, record: RecordedRequest, outcome: str) -> None:
        with self.lock:
            record.end, record.outcome = time.monotonic(), outcome
            self.in_flight -= record.endpoint == "generate"

    def gather(self) -> None:
        """Wait until ``answer_when_in_flight`` generations have been in flight at once."""
        with self.gathered:
            self.gathered.wait_for(
                lambda: self.max_in_flight >= self.answer_when_in_flight or self.stopping.is_set(),
                timeout=self.gather_timeout_s,
            )

    def wait_for_release(self, prompt: str) -> None:
        """While answers are held, wait until this prompt's is released."""
        with self.gathered:
            self.gathered.wait_for(
                lambda: not self.holding or any(text in prompt for text in self.released)
            )

    def pause(self, seconds: float) -> None:
        if seconds > 0:
            self.stopping.wait(seconds)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a client's session expects
    server: Any
    _record: RecordedRequest | None = None  # the request being answered, if a Gemini one

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet test output

    def do_GET(self) -> None:
        self._record = None
        if self.path == "/_stats":  # the benchmark's view; not a Gemini endpoint
            self._json(200, self.server.fake.stats(), "stats")
            return
        if self._served_batch("GET"):
            return
        self._serve("get")

    def do_POST(self) -> None:
        self._record = None
        if self.path == "/_reset":  # zero the counters (see FakeGemini.reset)
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.server.fake.reset()
            self._json(200, {"reset": True}, "reset")
            return
        if self._served_batch("POST"):
            return
        self._serve("generate")

    def _served_batch(self, method: str) -> bool:
        try:
            return serve_batch(self, method)
        except (BrokenPipeError, ConnectionResetError):  # the client hung up mid-answer
            self.close_connection = True
            return True

    def _serve(self, endpoint: str) -> None:
        fake: FakeGemini = self.server.fake
        url = urlsplit(self.path)
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        url_key = parse_qs(url.query).get("key", [None])[0]
        key = self.headers.get("x-goog-api-key") or url_key
        try:
            body = json.loads(raw or b"{}")
            parts = [p for c in body.get("contents", []) for p in c.get("parts", [])]
            prompt = " ".join(p.get("text", "") for p in parts)
            ratio = body.get("generationConfig", {}).get("imageConfig", {}).get("aspectRatio")
        except (ValueError, AttributeError, TypeError):
            body, prompt, ratio = None, "", None
        model, _, method = url.path.removeprefix("/v1beta/models/").partition(":")
        record = RecordedRequest(endpoint, model, prompt, ratio, key, time.monotonic())
        record.body = body
        self._record = record  # a keep-alive handler serves many requests: this one's
        reply, outcome = fake.begin(record, url_key is not None), "error"
        try:
            outcome = self._answer(fake, record, url.path, method, body, reply)
        except (BrokenPipeError, ConnectionResetError):  # the client hung up mid-answer
            self.close_connection = True
            outcome = "cut"
        finally:
            fake.finish(record, outcome)

    def _answer(
        self,
        fake: FakeGemini,
        record: RecordedRequest,
        path: str,
        method: str,
        body: Any,
        reply: Reply | None,
    ) -> str:
        wanted = "generateContent" if record.endpoint == "generate" else ""
        if not path.startswith("/v1beta/models/") or method != wanted:
            return self._error(fake, google_error(404, f"Method not found: {path}"))
        if not record.key:
            return self._error(fake, google_error(403))
        if record.key not in fake.api_keys:
            echo = f" (got {record.key})" if fake.echo_key_in_errors else ""
            return self._error(fake, google_error(400, MESSAGES[400] + echo, [KEY_INVALID]))
        if record.model not in fake.models:
            return self._error(fake, google_error(404, MESSAGES[404].format(model=record.model)))
        if record.endpoint == "generate" and not (body and body.get("contents")):
            return self._error(fake, google_error(400, "* contents: contents is not specified"))
        if record.endpoint == "generate" and (record.aspect_ratio or "1:1") not in ASPECT_RATIOS:
            return self._error(fake, google_error(400, f"Bad aspectRatio {record.aspect_ratio}"))
        reply = reply or Reply.ok()
        if reply.kind == "error":
            return self._error(fake, reply.body or google_error(reply.status))
        if reply.kind in ("disconnect", "hang"):
            fake.pause(reply.seconds)
            self.close_connection = True  # no status line at all: the client sees EOF
            return reply.kind
        if record.endpoint == "get":
            methods = ["generateContent", "countTokens"]
            info = {"name": f"models/{record.model}", "supportedGenerationMethods": methods}
            return self._json(200, info, "model")
        fake.gather()
        fake.wait_for_release(record.prompt)
        fake.pause(fake.latency_s)
        if reply.kind == "bomb":
            return self._bomb(reply.size)
        answer = _generate_answer(fake, record, body, reply)
        if reply.kind == "drip":
            return self._drip(fake, wire.plain_bytes(wire.json_segments(answer)), reply)
        if reply.reason == "truncated_json":
            data = wire.plain_bytes(wire.json_segments(answer))
            return self._send(200, data[: len(data) // 2], "application/json", reply.reason)
        if reply.reason == "garbled_gzip":
            self._headers(200, "application/json; charset=UTF-8", encoding="gzip")
            return self._stream(wire.chunked(iter([b"\x1f\x8b\x08\x00not gzip at all"])), "raw")
        if reply.reason == "html":
            page = b"<html><body><h1>502 Bad Gateway</h1><p>nginx</p></body></html>"
            return self._send(200, page, "text/html", reply.reason)
        return self._json(200, answer, reply.kind)

    def _drip(self, fake: FakeGemini, data: bytes, reply: Reply) -> str:
        # Plain on purpose: a declared length, then one byte at a time.
        self._headers(200, "application/json; charset=UTF-8", length=len(data))
        until = time.monotonic() + reply.limit_s
        for offset in range(len(data)):
            if fake.stopping.is_set() or time.monotonic() > until:
                self.close_connection = True
                return "drip"
            try:
                self.wfile.write(data[offset : offset + 1])
                self.wfile.flush()
            except OSError:  # the client hung up
                self.close_connection = True
                return "cut"
            if self._record is not None:
                self._record.bytes_sent = offset + 1
            fake.pause(reply.seconds)
        return "drip"

    def _bomb(self, inflated: int) -> str:
        self._headers(200, "application/json; charset=UTF-8", encoding="gzip")
        if self._record is not None:
            self._record.body_bytes = inflated
        return self._stream(wire.chunked(wire.gzip_bomb(inflated)), "bomb")

    def _error(self, fake: FakeGemini, payload: dict[str, Any]) -> str:
        fake.pause(fake.error_latency_s)
        return self._json(payload["error"]["code"], payload, "error")

    def _json(self, status: int, payload: Any, outcome: str) -> str:
        return self._send_segments(
            status, wire.json_segments(payload), "application/json; charset=UTF-8", outcome
        )

    def _send(self, status: int, data: bytes, content_type: str, outcome: str) -> str:
        return self._send_segments(status, [("text", data)], content_type, outcome)

    def _send_segments(
        self, status: int, segments: list[tuple[str, Any]], content_type: str, outcome: str
    ) -> str:
        """An answer as Google's front end sends it (chunked; gzip if the client offers it),
        or with a Content-Length on the plain wire."""
        fake: FakeGemini = self.server.fake
        if fake.wire == "plain":
            data = wire.plain_bytes(segments)
            self._headers(status, content_type, length=len(data))
            self.wfile.write(data)
            if self._record is not None:
                self._record.bytes_sent = len(data)
            return outcome
        if self._record is not None:
            self._record.body_bytes = sum(wire.segment_size(*segment) for segment in segments)
        if wire.accepts_gzip(self.headers.get("Accept-Encoding")):
            self._headers(status, content_type, encoding="gzip")
            return self._stream(wire.chunked(wire.gzip_pieces(segments)), outcome)
        self._headers(status, content_type)
        pieces = (wire.plain_bytes([segment]) for segment in segments)
        return self._stream(wire.chunked(pieces), outcome)

    def _stream(self, chunks: Iterable[bytes], outcome: str) -> str:
        sent = 0
        for chunk in chunks:
            self.wfile.write(chunk)
            sent += len(chunk)
            if self._record is not None:
                self._record.bytes_sent = sent
        return outcome

    def _headers(
        self, status: int, content_type: str, *, length: int | None = None, encoding: str = ""
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if length is None:
            self.send_header("Transfer-Encoding", "chunked")
            for name, value in wire.FRONT_END_HEADERS:
                self.send_header(name, value)
        else:
            self.send_header("Content-Length", str(length))
        if encoding:
            self.send_header("Content-Encoding", encoding)
        self.end_headers()
        if self._record is not None:
            self._record.encoding = encoding or "identity"
            self._record.body_bytes = length if length is not None else self._record.body_bytes


def _generate_answer(fake: FakeGemini, record: RecordedRequest, body: dict, reply: Reply) -> dict:
    prompt_tokens, output_tokens = len(record.prompt.split()), 0
    answer: dict[str, Any] = {"modelVersion": record.model, "responseId": f"fake-{id(record)}"}
    if reply.kind == "blocked":
        answer["promptFeedback"] = {"blockReason": reply.reason}
    elif reply.kind == "no_image":
        answer["candidates"] = [{"finishReason": reply.reason, "index": 0}]
    else:
        fmt, ratio = fake.image_format.lower(), record.aspect_ratio or "1:1"
        data = wire.image_marker(fmt, ratio)
        if reply.kind == "corrupt":
            whole = wire.image_base64(fmt, ratio)
            data = "@@not base64@@" if reply.reason == "base64" else whole[: len(whole) // 8 * 4]
        modalities = body.get("generationConfig", {}).get("responseModalities", ["TEXT"])
        parts: list[dict[str, Any]] = []
        if fake.text_before_image or "IMAGE" not in modalities:
            parts.append({"text": "Here is the passport cover you asked for."})
        if reply.size:
            parts.append({"text": "x" * reply.size})
        if "IMAGE" in modalities:
            mime = "image/jpeg" if fmt in ("jpg", "jpeg") else f"image/{fmt}"
            # Real image parts carry a thought signature (Gemini 2.5's image model does).
            parts.append({"inlineData": {"mimeType": mime, "data": data}})
            parts[-1]["thoughtSignature"] = THOUGHT_SIGNATURE
            output_tokens = 1290
        content = {"role": "model", "parts": parts}
        answer["candidates"] = [{"content": content, "finishReason": "STOP", "index": 0}]
    total = prompt_tokens + output_tokens
    usage: dict[str, Any] = {
        "promptTokenCount": prompt_tokens,
        "totalTokenCount": total,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt_tokens}],
    }
    if output_tokens:  # left out when none, as proto3 JSON does
        usage["candidatesTokenCount"] = output_tokens
        usage["candidatesTokensDetails"] = [{"modality": "IMAGE", "tokenCount": output_tokens}]
    answer["usageMetadata"] = usage
    return answer


def main(argv: Sequence[str] | None = None) -> int:
    """Serve a fake Gemini in its own process until killed (SIGTERM/SIGINT).

        python -m passport_pipeline_tests.support.fake_gemini --port 0 --latency 30 --api-key KEY

    The first line on stdout is the base URL. Besides Gemini's endpoints it answers
    ``GET /_stats`` (counters and generate intervals as JSON) and ``POST /_reset``.
    """
    import argparse
    import signal
    import sys

    parser = argparse.ArgumentParser(description="A local server that answers like Gemini.")
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per generation")
    parser.add_argument("--error-latency", type=float, default=0.0)
    parser.add_argument("--api-key", action="append", default=None, help="accepted key(s)")
    parser.add_argument("--model", action="append", default=None, help="known model(s)")
    parser.add_argument("--image-format", default="png", choices=["png", "jpeg", "webp"])
    parser.add_argument("--request-queue-size", type=int, default=1024)
    parser.add_argument("--quota-per-minute", type=int, default=None, help="Google's window")
    parser.add_argument("--quota-per-day", type=int, default=None)
    parser.add_argument("--garbage", action="store_true", help="every image is unusable")
    args = parser.parse_args(argv)

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    server = FakeGemini(
        api_keys=args.api_key or ["test-key"],
        models=args.model or [DEFAULT_MODEL],
        latency_s=args.latency,
        error_latency_s=args.error_latency,
        image_format=args.image_format,
        request_queue_size=args.request_queue_size,
        port=args.port,
    )
    if args.quota_per_minute or args.quota_per_day:
        server.quotas = Quotas(per_minute=args.quota_per_minute, per_day=args.quota_per_day)
    if args.garbage:
        server.script([Reply.corrupt_image()])
    with server:
        wire.image_base64(args.image_format, "3:4")  # draw the usual image before traffic
        print(server.base_url, flush=True)
        while not stop.wait(1.0):
            pass
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
