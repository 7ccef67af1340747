"""The production Gemini client against a local server that speaks Gemini's JSON over HTTP.

Nothing is patched: requests, tenacity and the sockets are real. Backoffs are tiny so that the
file stays fast; the server's own retryDelay is honoured as given.
"""

from __future__ import annotations

import logging
import re
import socket
import time
import tracemalloc
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import pytest

from passport_pipeline.domain.images import inspect_image
from passport_pipeline.domain.months import SEOUL, Month
from passport_pipeline.domain.records import CoverRequest, GeneratedImage, Visit
from passport_pipeline.resources.gemini import GeminiImageModel
from passport_pipeline.resources.image_model import (
    PermanentImageModelError,
    TransientImageModelError,
)
from passport_pipeline_tests.support.fake_gemini import DEFAULT_MODEL, FakeGemini, Reply

KEY = "AIzaSy-test-SECRET-key-0123456789"
GEMINI_LOGGER = "passport_pipeline.resources.gemini"


@pytest.fixture
def server() -> Iterator[FakeGemini]:
    with FakeGemini(api_keys=[KEY]) as fake:
        yield fake


@pytest.fixture(autouse=True)
def no_key_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every test: whatever was logged (any logger, any level) never holds the key."""
    caplog.set_level(logging.DEBUG)
    yield
    assert KEY not in caplog.text
    assert all(KEY not in record.getMessage() for record in caplog.records)


def make_model(server: FakeGemini | str, **overrides: object) -> GeminiImageModel:
    base_url = server if isinstance(server, str) else server.base_url
    config = {
        "api_key": KEY,
        "base_url": base_url,
        "initial_backoff_s": 0.01,
        "max_backoff_s": 0.05,
        "connect_timeout_s": 2.0,
        "read_timeout_s": 10.0,
    }
    return GeminiImageModel(**{**config, **overrides})


def cover_request(prompt: str = "A passport cover for Mina"):
    visit = Visit("Gwangalli Beach", "beach", "Busan", "KR", datetime(2024, 12, 7, tzinfo=SEOUL))
    return CoverRequest(prompt, Month(2024, 12), "Mina", "Sea lover", (visit,))


def assert_secret_free(*things: object) -> None:
    """No string form of an exception (and its chain), a model or metadata holds the key."""
    for thing in things:
        chain: list[object] = [thing]
        while isinstance(chain[-1], BaseException) and (
            chain[-1].__cause__ or chain[-1].__context__
        ):
            chain.append(chain[-1].__cause__ or chain[-1].__context__)
        for item in chain:
            texts = [str(item), repr(item), *map(str, getattr(item, "args", ()))]
            if isinstance(item, GeneratedImage):
                texts += [str(item.metadata), item.model]
            assert all(KEY not in text for text in texts), f"the key leaked in {item!r}"


def test_happy_path_returns_the_image_with_its_metadata(server: FakeGemini) -> None:
    server.latency_s = 0.05
    model = make_model(server)
    image = model.generate(cover_request())

    assert inspect_image(image.data).mime_type == "image/png" == image.mime_type
    assert image.model == DEFAULT_MODEL
    meta = image.metadata
    assert meta["attempts"] == 1 and meta["mime_type"] == "image/png"
    assert (meta["width"], meta["height"]) == (864, 1184)  # what the model draws at 3:4
    assert meta["prompt_tokens"] == 5 and meta["output_tokens"] == 1290
    assert meta["total_tokens"] == 1295
    assert meta["model_version"] == DEFAULT_MODEL
    assert meta["estimated_cost_usd"] == 0.039
    # The server held its answer 0.05 s: the latency is the whole call's, not the parsing's.
    assert meta["latency_s"] >= server.latency_s
    # The key went in the header only; the request carried the prompt and the aspect ratio.
    assert server.keys_seen == {KEY: 1} and server.keys_in_url == 0
    (record,) = server.records
    assert record.prompt == "A passport cover for Mina" and record.aspect_ratio == "3:4"
    # As Google's front end sends it: gzip (the client offered it), a real-size image.
    assert record.encoding == "gzip" and record.body_bytes > 2_000_000
    assert record.bytes_sent < record.body_bytes
    assert_secret_free(image, model)
    assert "key" not in repr(model).lower()


@pytest.mark.parametrize(("image_format", "mime"), [("jpeg", "image/jpeg"), ("webp", "image/webp")])
def test_other_image_types_are_accepted(server: FakeGemini, image_format: str, mime: str) -> None:
    server.image_format = image_format
    image = make_model(server).generate(cover_request())
    assert image.mime_type == mime == image.metadata["mime_type"]


@pytest.mark.parametrize(("ratio", "size"), [("9:16", (768, 1344)), ("1:1", (1024, 1024))])
def test_the_configured_aspect_ratio_is_sent(server: FakeGemini, ratio, size) -> None:
    image = make_model(server, aspect_ratio=ratio).generate(cover_request())
    assert server.records[0].aspect_ratio == ratio
    assert (image.metadata["width"], image.metadata["height"]) == size


def test_preflight_is_a_free_models_get(server: FakeGemini) -> None:
    make_model(server).preflight()
    assert (server.get_requests, server.generate_requests) == (1, 0)


@pytest.mark.parametrize("fault", [503, 500, 504, Reply.rate_limited(None), Reply.disconnect()])
def test_transient_answers_are_retried_until_an_image_comes(
    server: FakeGemini, fault: object, caplog: pytest.LogCaptureFixture
) -> None:
    server.script([fault, fault, "ok"])
    image = make_model(server).generate(cover_request())
    assert image.metadata["attempts"] == 3 and server.generate_requests == 3
    retries = [r for r in caplog.records if r.name == GEMINI_LOGGER]
    assert [r.levelno for r in retries] == [logging.WARNING] * 2
    assert "attempt 1 of 3 failed" in retries[0].getMessage()


def retry_waits(caplog: pytest.LogCaptureFixture) -> list[float]:
    """The waits the client announced before each retry (its own record of its decision)."""
    messages = [r.getMessage() for r in caplog.records if r.name == GEMINI_LOGGER]
    return [float(m) for m in re.findall(r"retrying in ([0-9.]+) s", "\n".join(messages))]


def test_429_waits_the_servers_retry_delay(
    server: FakeGemini, caplog: pytest.LogCaptureFixture
) -> None:
    server.script([Reply.rate_limited("0.3s"), "ok"])
    image = make_model(server).generate(cover_request())
    assert image.metadata["attempts"] == 2
    # The server's delay (plus up to 10% jitter), not the client's own 0.01 s backoff ...
    (wait,) = retry_waits(caplog)
    assert 0.3 <= wait <= 0.33
    # ... and the server saw the retry no sooner than that after the first request arrived.
    first, second = server.records
    assert (first.outcome, second.outcome) == ("error", "image")
    assert second.start - first.start >= 0.3


def test_the_servers_retry_delay_is_capped(
    server: FakeGemini, caplog: pytest.LogCaptureFixture
) -> None:
    server.script([Reply.rate_limited("30s"), "ok"])
    image = make_model(server, max_retry_delay_s=0.2).generate(cover_request())
    assert image.metadata["attempts"] == 2 and server.generate_requests == 2
    (wait,) = retry_waits(caplog)
    assert 0.2 <= wait <= 0.22  # the cap, not the 30 s the server asked for


def test_429_every_time_gives_up_after_max_attempts(server: FakeGemini) -> None:
    server.script([Reply.rate_limited("0.05s")])
    with pytest.raises(TransientImageModelError, match=r"429 RESOURCE_EXHAUSTED.*3 attempts") as e:
        make_model(server).generate(cover_request())
    assert server.generate_requests == 3
    assert_secret_free(e.value)


def test_a_daily_quota_is_not_retried(server: FakeGemini) -> None:
    server.script([Reply.daily_quota()])
    with pytest.raises(PermanentImageModelError, match="daily quota") as e:
        make_model(server).generate(cover_request())
    assert (e.value.reason, e.value.halts_run) == ("DAILY_QUOTA_EXHAUSTED", True)
    assert server.generate_requests == 1
    assert_secret_free(e.value)


@pytest.mark.parametrize("echo", [False, True])
def test_a_bad_key_halts_the_run_after_one_request(echo: bool) -> None:
    with FakeGemini(api_keys=["another-key"], echo_key_in_errors=echo) as server:
        with pytest.raises(PermanentImageModelError, match="rejected the API key") as e:
            make_model(server).generate(cover_request())
        assert (e.value.reason, e.value.halts_run) == ("API_KEY_INVALID", True)
        assert server.generate_requests == 1
        # A server that echoes the key gets it scrubbed from the message.
        assert ("[redacted]" in str(e.value)) is echo
        with pytest.raises(PermanentImageModelError, match="API_KEY_INVALID") as preflight:
            make_model(server).preflight()
        assert preflight.value.halts_run and server.get_requests == 1
        assert_secret_free(e.value, preflight.value)


def test_an_unknown_model_halts_the_run_at_preflight(server: FakeGemini) -> None:
    with pytest.raises(PermanentImageModelError, match="models/gemini-0-nope is not found") as e:
        make_model(server, model="gemini-0-nope").preflight()
    assert (e.value.reason, e.value.halts_run) == ("NOT_FOUND", True)
    assert server.get_requests == 1
    assert_secret_free(e.value)


def test_preflight_retries_transient_answers_then_says_so(server: FakeGemini) -> None:
    server.script([503], endpoint="get")
    with pytest.raises(TransientImageModelError, match="preflight failed after 3 attempts"):
        make_model(server).preflight()
    assert server.get_requests == 3


@pytest.mark.parametrize(
    ("api_key", "problem"),
    [(" ", "is empty"), (KEY[:8] + "\n" + KEY[8:], "control characters")],
)
def test_a_malformed_key_halts_without_calling(
    server: FakeGemini, api_key: str, problem: str
) -> None:
    with pytest.raises(PermanentImageModelError, match=problem) as e:
        make_model(server, api_key=api_key).generate(cover_request())
    assert e.value.halts_run and not server.records
    assert_secret_free(e.value)


def test_whitespace_around_the_key_is_ignored(server: FakeGemini) -> None:
    make_model(server, api_key=f"  {KEY}\n").generate(cover_request())
    assert server.keys_seen == {KEY: 1}


def test_a_rule_per_prompt_gives_each_user_its_own_sequence(server: FakeGemini) -> None:
    server.script([503, "ok"], prompt_contains="user", per_prompt=True)
    model = make_model(server)
    for name in ("user 1", "user 2", "someone else"):
        model.generate(cover_request(name))
    assert (server.requests_for("user 1"), server.requests_for("user 2")) == (2, 2)
    assert server.rule_counts == {"user": 4} and server.generate_requests == 5


def test_another_bad_request_fails_only_that_user(server: FakeGemini) -> None:
    server.script([Reply.error(400, "Request contains an invalid argument.")], prompt_contains="X")
    with pytest.raises(PermanentImageModelError, match="invalid argument") as e:
        make_model(server).generate(cover_request("X marks the spot"))
    assert (e.value.reason, e.value.halts_run) == ("INVALID_ARGUMENT", False)
    assert not e.value.refused
    assert server.generate_requests == 1
    make_model(server).generate(cover_request("Mina"))  # other users are unaffected


@pytest.mark.parametrize(
    ("reply", "named"),
    [
        (Reply.no_image("IMAGE_SAFETY"), "finishReason IMAGE_SAFETY"),
        (Reply.no_image("IMAGE_PROHIBITED_CONTENT"), "finishReason IMAGE_PROHIBITED_CONTENT"),
        (Reply.no_image("NO_IMAGE"), "finishReason NO_IMAGE"),
        (Reply.blocked("PROHIBITED_CONTENT"), "promptFeedback.blockReason PROHIBITED_CONTENT"),
    ],
)
def test_a_refusal_is_permanent_and_named(server: FakeGemini, reply: Reply, named: str) -> None:
    server.script([reply])
    with pytest.raises(PermanentImageModelError, match=f"Gemini returned no image: {named}") as e:
        make_model(server).generate(cover_request())
    assert e.value.reason == reply.reason and not e.value.halts_run
    assert e.value.refused  # the user's outcome, not a broken model
    assert server.generate_requests == 1
    assert_secret_free(e.value)


def test_a_refusal_with_the_fallback_draws_a_local_cover(server: FakeGemini) -> None:
    server.script([Reply.no_image("IMAGE_SAFETY")])
    image = make_model(server, fallback_to_local=True).generate(cover_request())
    assert inspect_image(image.data).mime_type == image.mime_type
    assert image.model == "local-renderer"
    assert image.metadata["fallback"] is True
    assert image.metadata["fallback_reason"] == "IMAGE_SAFETY"
    assert server.generate_requests == 1
    assert_secret_free(image)


UNUSABLE = [
    (Reply.corrupt_image(), "INVALID_IMAGE", "not a decodable image"),
    (Reply.corrupt_image(invalid_base64=True), "INVALID_IMAGE", "base64 does not decode"),
    (Reply.truncated_json(), "BAD_RESPONSE", "not JSON"),
    (Reply.html(), "BAD_RESPONSE", "not JSON"),
]


@pytest.mark.parametrize(("reply", "reason", "named"), UNUSABLE)
def test_an_answer_that_is_no_image_is_asked_again_once_then_fails_the_user(
    server: FakeGemini, reply: Reply, reason: str, named: str
) -> None:
    server.script([reply])
    with pytest.raises(PermanentImageModelError, match=named) as e:
        make_model(server).generate(cover_request())
    assert (e.value.reason, e.value.unusable_answer, e.value.halts_run) == (reason, True, False)
    assert not e.value.refused
    assert "asked again only once" in str(e.value)
    assert server.generate_requests == 2
    assert_secret_free(e.value)


@pytest.mark.parametrize(("reply", "reason", "named"), UNUSABLE[:1] + UNUSABLE[2:3])
def test_one_unusable_answer_then_an_image_is_a_cover(
    server: FakeGemini, reply: Reply, reason: str, named: str
) -> None:
    server.script([reply, "ok"])
    image = make_model(server).generate(cover_request())
    assert image.metadata["attempts"] == 2 and server.generate_requests == 2


def test_an_unusable_answer_then_outages_fails_the_user_for_good(server: FakeGemini) -> None:
    # Transient answers after it are still retried within the attempt; but the user is not
    # handed to the step's retry policy, which could pay for more garbage.
    server.script([Reply.corrupt_image(), 503, 503])
    with pytest.raises(PermanentImageModelError, match="the last attempt: Gemini answered 503"):
        make_model(server).generate(cover_request())
    assert server.generate_requests == 3


def test_a_dripping_answer_is_cut_at_the_deadline(server: FakeGemini) -> None:
    # One byte every 0.1 s: the ~600-byte answer would take a minute; the deadline is 1 s.
    server.script([Reply.drip(0.1, limit_s=60)])
    with pytest.raises(TransientImageModelError, match="within the 1 s deadline") as e:
        make_model(server, request_deadline_s=1, max_attempts=2).generate(cover_request())
    assert "after 2 attempts" in str(e.value)
    assert server.generate_requests == 2
    wait_until_answered(server)
    for record in server.records:
        assert record.outcome == "cut"  # the client hung up; the server did not finish
        assert 0 < record.bytes_sent < record.body_bytes / 4


def test_the_deadline_also_bounds_a_silent_server(server: FakeGemini) -> None:
    server.script([Reply.hang(30)])
    with pytest.raises(TransientImageModelError, match=r"0.5 s deadline.*after 1 attempts"):
        make_model(server, request_deadline_s=0.5, read_timeout_s=60, max_attempts=1).generate(
            cover_request()
        )
    assert server.generate_requests == 1


def test_an_image_over_the_byte_limit_is_refused_unread(server: FakeGemini) -> None:
    # The 1.7 MB PNG's answer fits the body limit of a 1.5 MB image; the image does not.
    server.script([Reply.ok()])
    with pytest.raises(PermanentImageModelError, match="more than the 1,500,000 a cover may") as e:
        make_model(server, max_image_bytes=1_500_000).generate(cover_request())
    assert (e.value.reason, e.value.unusable_answer) == ("IMAGE_TOO_LARGE", True)
    assert server.generate_requests == 2


def test_an_answer_over_the_body_limit_is_not_read_to_its_end(server: FakeGemini) -> None:
    # A 3 MB answer, gzip and chunked (no length said); an image of at most 1,000 bytes needs
    # a body of about 1 MB at most: the decoded body is cut there.
    server.script([Reply.oversize(3_000_000)])
    with pytest.raises(PermanentImageModelError, match=r"ran past 1,0\d\d,\d\d\d bytes") as e:
        make_model(server, max_image_bytes=1000).generate(cover_request())
    assert e.value.reason == "IMAGE_TOO_LARGE"
    assert server.generate_requests == 2


def test_a_declared_length_over_the_body_limit_is_refused_before_reading() -> None:
    with FakeGemini(api_keys=[KEY], wire="plain") as server:
        server.script([Reply.oversize(3_000_000)])
        # 3 MB of text and a 2.3 MB image's base64.
        with pytest.raises(PermanentImageModelError, match="declares 5,26") as e:
            make_model(server, max_image_bytes=1000).generate(cover_request())
    assert e.value.reason == "IMAGE_TOO_LARGE"
    assert server.generate_requests == 2


def test_a_compressed_bomb_is_cut_at_the_limit_without_being_held(server: FakeGemini) -> None:
    # 1 GiB of JSON whitespace in about 4.6 MB of gzip; the default limits allow an answer of
    # about 27.7 MB. What the client held at its peak, and what the server sent, stay near that.
    server.script([Reply.bomb(1 << 30)])
    tracemalloc.start()
    try:
        with pytest.raises(PermanentImageModelError, match=r"ran past 27,\d\d\d,\d\d\d") as e:
            make_model(server).generate(cover_request())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert e.value.reason == "IMAGE_TOO_LARGE" and e.value.unusable_answer
    assert peak < 100_000_000, f"the client held {peak:,} bytes"
    wait_until_answered(server)
    # The client hung up on both before their end (what the server had written by then
    # depends on the kernel's socket buffers, not on the client).
    assert [r.outcome for r in server.records] == ["cut", "cut"]
    assert all(r.body_bytes == 1 << 30 for r in server.records)


def test_a_gzip_body_that_does_not_decode_is_an_unusable_answer(server: FakeGemini) -> None:
    server.script([Reply.garbled_gzip()])
    with pytest.raises(PermanentImageModelError, match="said it was gzip-encoded") as e:
        make_model(server).generate(cover_request())
    assert (e.value.reason, e.value.unusable_answer) == ("BAD_ENCODING", True)
    assert server.generate_requests == 2


def wait_until_answered(server: FakeGemini) -> None:
    deadline = time.monotonic() + 5
    while any(r.end is None for r in server.records) and time.monotonic() < deadline:
        time.sleep(0.05)  # the server notices the hang-up at its next write


def test_a_read_timeout_is_retried_then_transient(server: FakeGemini) -> None:
    server.script([Reply.hang(30)])
    with pytest.raises(TransientImageModelError, match=r"read timeout.*after 2 attempts") as e:
        make_model(server, read_timeout_s=0.3, max_attempts=2).generate(cover_request())
    assert server.generate_requests == 2
    # The server is still silent on both (it would hang up after 30 s): the client gave up on
    # each by its own read timeout, and retried while the first was still unanswered.
    assert [r.end for r in server.records] == [None, None]
    assert_secret_free(e.value)


def test_a_refused_connection_is_transient() -> None:
    with socket.socket() as probe:  # a port that nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed_url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    with pytest.raises(TransientImageModelError, match="could not talk to Gemini") as e:
        make_model(closed_url).generate(cover_request())
    assert "after 3 attempts" in str(e.value)
    assert_secret_free(e.value)


def test_one_resource_serves_concurrent_steps(server: FakeGemini) -> None:
    # The server answers no one until all 12 are in flight: a client that sent them one at a
    # time would see max_in_flight 1 (after the server's 10 s wait), not 12.
    server.answer_when_in_flight = 12
    model = make_model(server)
    with ThreadPoolExecutor(max_workers=12) as pool:
        images = list(pool.map(model.generate, [cover_request(f"user {n}") for n in range(12)]))
    assert len(images) == 12 and server.max_in_flight == 12
    assert all(image.metadata["attempts"] == 1 for image in images)
    assert max(r.start for r in server.records) < min(r.end for r in server.records)
    assert server.keys_seen == {KEY: 12}
