"""The Batch API of the fake Gemini: batches, files, and their documented JSON shapes.

    with FakeGemini() as server:
        server.script([Reply.error(400, "bad prompt")], endpoint="batch", prompt_contains="Busan")
        ... a month submits its batch ...
        [name] = server.batches.names()
        server.batches.run(name)  # RUNNING, nothing answered yet
        server.batches.finish(name)  # SUCCEEDED: every request answered (rules: endpoint "batch")
        server.batches.end(name, "EXPIRED")  # or FAILED; a client's cancel makes CANCELLED

Endpoints (the key is checked as for generateContent):
``POST /v1beta/models/{model}:batchGenerateContent`` (``batch.inputConfig.requests.requests[]``
or ``batch.inputConfig.fileName``), ``GET /v1beta/batches/{id}``, ``POST
/v1beta/batches/{id}:cancel``, the Files API's resumable upload (``POST /upload/v1beta/files``
with ``X-Goog-Upload-Command: start``, then ``upload, finalize`` at the URL it gave) and
``GET /download/v1beta/files/{id}:download?alt=media`` (the results file), and ``GET
/v1beta/batches`` (batches.list, paged). Each batch answer is made like a generateContent
answer and recorded with endpoint ``batch``: ``paid_images()`` counts the images served by
each endpoint. Shapes as Google sends them: an Operation omits ``done`` while open and every
zero count (proto3 JSON), a per-request error is a ``google.rpc.Status`` (integer gRPC code
and a message, no status string), types say ``v1main``; results files are streamed line by
line (each line a real-size answer) without being held whole.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from passport_pipeline_tests.support import google_wire as wire

BATCH_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch"
OUTPUT_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatchOutput"
LIST_PAGE = 2  # batches.list's page size when the client names none: small, so paging is used
OPEN = ("PENDING", "RUNNING")


@dataclass
class FakeBatch:
    name: str
    model: str
    display_name: str
    requests: list[tuple[str, dict]]  # (key, GenerateContentRequest)
    from_file: bool
    state: str = "PENDING"
    answered: int = 0
    answers: list[dict] = field(default_factory=list)
    results_file: str | None = None
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ"))


class FakeBatches:
    """The fake's batches and files; tests move batches from state to state."""

    def __init__(self, fake: Any):
        self.fake = fake
        self.lock = threading.Lock()
        self.batches: dict[str, FakeBatch] = {}
        self.files: dict[str, bytes] = {}  # uploaded input files
        self.results: dict[str, list[dict]] = {}  # results files: one answer per line
        self.uploads: dict[str, str] = {}  # upload id -> display name
        self.calls: Counter[str] = Counter()  # create, get, list, cancel, upload, download
        # Set: a create is recorded, then its answer is held until the event is cleared (a
        # client killed in between never hears of its batch).
        self.hold_create_answer: threading.Event | None = None
        self.created = threading.Event()
        self.create_bodies: list[dict] = []  # each create call's JSON body, as sent
        self.faults: list[int] = []  # HTTP statuses the next Batch API calls answer with

    # -- driven by the tests ---------------------------------------------------------------

    def names(self) -> list[str]:
        with self.lock:
            return list(self.batches)

    def run(self, name: str, answered: int = 0) -> None:
        """RUNNING, with ``answered`` requests done (the counts ``batchStats`` shows)."""
        with self.lock:
            self.batches[name].state, self.batches[name].answered = "RUNNING", answered

    def finish(self, name: str) -> None:
        """SUCCEEDED: every request answered through the fake's rules for endpoint ``batch``."""
        from passport_pipeline_tests.support.fake_gemini import RecordedRequest, Reply

        batch = self.batches[name]
        answers = []
        for key, body in batch.requests:
            parts = [p for c in body.get("contents", []) for p in c.get("parts", [])]
            prompt = " ".join(p.get("text", "") for p in parts)
            ratio = body.get("generationConfig", {}).get("imageConfig", {}).get("aspectRatio")
            record = RecordedRequest("batch", batch.model, prompt, ratio, None, time.monotonic())
            reply = self.fake.begin(record, False) or Reply.ok()
            answers.append({"key": key, **_answer(self.fake, record, body, reply)})
            self.fake.finish(record, reply.kind)
        with self.lock:
            batch.answers, batch.state, batch.answered = answers, "SUCCEEDED", len(answers)
            if batch.from_file:
                batch.results_file = f"files/{name.split('/')[-1]}-results"
                self.results[batch.results_file] = answers

    def end(self, name: str, state: str) -> None:
        """FAILED or EXPIRED (or CANCELLED) without answers."""
        with self.lock:
            self.batches[name].state = state

    def fail_next(self, *statuses: int) -> None:
        """The next Batch/Files API calls answer these HTTP errors (Google's error body)."""
        with self.lock:
            self.faults.extend(statuses)

    def paid_images(self) -> Counter[str]:
        """Images served, by endpoint (``generate``: the direct path; ``batch``)."""
        with self.fake.lock:
            return Counter(r.endpoint for r in self.fake.records if r.outcome == "image")

    # -- the wire --------------------------------------------------------------------------

    def operation(self, batch: FakeBatch) -> dict:
        pending = 0 if batch.state not in OPEN else len(batch.requests) - batch.answered
        failed = sum("error" in answer for answer in batch.answers)
        counts = {
            "requestCount": len(batch.requests),
            "successfulRequestCount": batch.answered - failed,
            "failedRequestCount": failed,
            "pendingRequestCount": pending,
        }
        # int64 as strings, and a zero left out, as proto3 JSON writes them.
        stats = {name: str(count) for name, count in counts.items() if count}
        metadata: dict[str, Any] = {
            "@type": BATCH_TYPE,
            "model": f"models/{batch.model}",
            "name": batch.name,
            "displayName": batch.display_name,
            "createTime": batch.created,
            "updateTime": time.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "batchStats": stats,
            "state": f"BATCH_STATE_{batch.state}",
        }
        operation: dict[str, Any] = {"name": batch.name, "metadata": metadata}
        if batch.state not in OPEN:
            operation["done"] = True
        if batch.state == "SUCCEEDED":
            if batch.results_file:
                output: dict[str, Any] = {"responsesFile": batch.results_file}
            else:
                inlined = [
                    {"metadata": {"key": a["key"]}, **{k: v for k, v in a.items() if k != "key"}}
                    for a in batch.answers
                ]
                output = {"inlinedResponses": {"inlinedResponses": inlined}}
            metadata["output"] = output
            operation["response"] = {"@type": OUTPUT_TYPE, **output}
        elif batch.state == "CANCELLED":
            operation["error"] = {"code": 1, "message": "CANCELLED"}
        return operation


def serve_batch(handler: Any, method: str) -> bool:
    """Answer a Batch or Files API request; False when the path is none of theirs."""
    from passport_pipeline_tests.support.fake_gemini import KEY_INVALID, MESSAGES, google_error

    fake = handler.server.fake
    batches: FakeBatches = fake.batches
    url = urlsplit(handler.path)
    path, query = url.path, parse_qs(url.query)
    ours = (
        path.endswith(":batchGenerateContent")
        or path == "/v1beta/batches"
        or path.startswith(("/v1beta/batches/", "/upload/v1beta/files", "/download/v1beta/files/"))
    )  # fmt: skip
    if not ours:
        return False
    handler._record = None
    raw = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
    key = handler.headers.get("x-goog-api-key") or query.get("key", [None])[0]
    if not key:
        handler._json(403, google_error(403), "error")
        return True
    if key not in fake.api_keys:
        handler._json(400, google_error(400, MESSAGES[400], [KEY_INVALID]), "error")
        return True
    with batches.lock:
        fault = batches.faults.pop(0) if batches.faults else None
    if fault is not None:
        batches.calls["fault"] += 1
        handler._json(fault, google_error(fault), "error")
        return True
    if path.startswith("/upload/"):
        return _upload(handler, batches, query, raw)
    if path.startswith("/download/"):
        name = path.removeprefix("/download/v1beta/").removesuffix(":download")
        batches.calls["download"] += 1
        if name not in batches.results or query.get("alt") != ["media"]:
            handler._json(404, google_error(404, f"File {name} not found"), "error")
            return True
        segments = [
            segment
            for answer in batches.results[name]
            for segment in [*wire.json_segments(answer), ("text", b"\n")]
        ]
        handler._send_segments(200, segments, "application/octet-stream", "download")
        return True
    if path == "/v1beta/batches" and method == "GET":
        return _list(handler, batches, query)
    if path.endswith(":batchGenerateContent") and method == "POST":
        return _create(handler, batches, path, raw)
    name = path.removeprefix("/v1beta/").removesuffix(":cancel")
    batch = batches.batches.get(name)
    if batch is None:
        handler._json(404, google_error(404, f"Batch {name} not found"), "error")
        return True
    if path.endswith(":cancel") and method == "POST":
        batches.calls["cancel"] += 1
        with batches.lock:
            batch.state = "CANCELLED" if batch.state in OPEN else batch.state
        handler._json(200, {}, "cancel")
        return True
    batches.calls["get"] += 1
    handler._json(200, batches.operation(batch), "batch")
    return True


def _list(handler: Any, batches: FakeBatches, query: dict) -> bool:
    """batches.list: the newest first, ``pageSize`` at a time, ``nextPageToken`` to go on."""
    size = int(query.get("pageSize", [LIST_PAGE])[0])
    start = int(query.get("pageToken", ["0"])[0] or 0)
    batches.calls["list"] += 1
    with batches.lock:
        newest_first = list(reversed(batches.batches.values()))
    page = newest_first[start : start + size]
    answer: dict[str, Any] = {"operations": [batches.operation(batch) for batch in page]}
    if start + size < len(newest_first):
        answer["nextPageToken"] = str(start + size)
    handler._json(200, answer, "list")
    return True


def _create(handler: Any, batches: FakeBatches, path: str, raw: bytes) -> bool:
    from passport_pipeline_tests.support.fake_gemini import MESSAGES, google_error

    model = path.removeprefix("/v1beta/models/").removesuffix(":batchGenerateContent")
    if model not in batches.fake.models:
        handler._json(404, google_error(404, MESSAGES[404].format(model=model)), "error")
        return True
    try:
        batches.create_bodies.append(json.loads(raw))
        batch = json.loads(raw)["batch"]
        config = batch["inputConfig"]
        if "fileName" in config:
            lines = batches.files[config["fileName"]].decode().splitlines()
            items = [json.loads(line) for line in lines if line.strip()]
            requests = [(item["key"], item["request"]) for item in items]
        else:
            inlined = config["requests"]["requests"]
            requests = [(item["metadata"]["key"], item["request"]) for item in inlined]
    except (ValueError, KeyError, TypeError):
        handler._json(400, google_error(400, "Invalid batch: inputConfig"), "error")
        return True
    with batches.lock:
        batches.calls["create"] += 1
        name = f"batches/fake{len(batches.batches) + 1:04d}"
        display = batch.get("displayName", "")
        created = FakeBatch(name, model, display, requests, "fileName" in config)
        batches.batches[name] = created
    batches.created.set()
    if (hold := batches.hold_create_answer) is not None:
        while hold.is_set() and not batches.fake.stopping.wait(0.05):
            pass
    handler._json(200, batches.operation(created), "batch")
    return True


def _upload(handler: Any, batches: FakeBatches, query: dict, raw: bytes) -> bool:
    command = handler.headers.get("X-Goog-Upload-Command", "")
    if command == "start":
        with batches.lock:
            upload_id = str(len(batches.uploads) + 1)
            batches.uploads[upload_id] = (
                json.loads(raw or b"{}").get("file", {}).get("display_name", "")
            )
        host, port = handler.server.server_address[:2]
        location = f"http://{host}:{port}/upload/v1beta/files?upload_id={upload_id}"
        handler.send_response(200)
        handler.send_header("X-Goog-Upload-URL", location)
        handler.send_header("X-Goog-Upload-Status", "active")
        handler.send_header("Content-Length", "0")
        handler.end_headers()
        return True
    upload_id = query.get("upload_id", [""])[0]
    if "finalize" not in command or upload_id not in batches.uploads:
        handler._json(400, {"error": {"code": 400, "message": "bad upload"}}, "error")
        return True
    batches.calls["upload"] += 1
    name = f"files/upload{upload_id}"
    with batches.lock:
        batches.files[name] = raw
    info = {"name": name, "mimeType": "application/jsonl", "sizeBytes": str(len(raw))}
    handler._json(200, {"file": {**info, "state": "ACTIVE"}}, "upload")
    return True


def _answer(fake: Any, record: Any, body: dict, reply: Any) -> dict:
    from passport_pipeline_tests.support.fake_gemini import _generate_answer, google_error

    if reply.kind == "error":
        error = (reply.body or google_error(reply.status))["error"]
        return {"error": wire.grpc_status(error["code"], error["message"])}
    return {"response": _generate_answer(fake, record, body, reply)}
