"""Reading a streamed ``requests`` answer as HTTP says, within a total deadline and size limits.

Google's front end answers ``Transfer-Encoding: chunked`` and, whenever the client offers it,
``Content-Encoding: gzip``. The body is read as it arrives and decoded as its headers say
(urllib3's decoders, asked for at most ``_CHUNK`` decoded bytes at a time, so a compressed
bomb — a few KB that inflate to GBs — is cut at the limit without ever being held whole).

requests' read timeout bounds each wait for the next bytes, never the whole answer: a server
that sends one byte every few seconds holds a call for as long as it likes. Here each wait is
cut to what is left of the deadline, and reading stops once the decoded body is longer than
anyone should pay for. The caller opens the request with ``stream=True`` and closes the
response; a response left unread is closed with its connection, which the server sees as the
client hanging up.

Limits apply to the decoded body (what is parsed and held), and also to a declared
``Content-Length`` (the wire), which is refused before a byte of the body is read.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import requests
import urllib3

_CHUNK = 64 * 1024
# What we can decode, and so what we offer: never a coding whose decoder may be missing.
ACCEPT_ENCODING = "gzip, deflate"


class BodyDeadlineExceeded(Exception):
    """The deadline passed before the body ended."""

    def __init__(self, received: int):
        super().__init__(f"deadline passed after {received} bytes")
        self.received = received


class BodyTooLarge(Exception):
    """The body (or one line of it) is, or says it is, longer than the limit; it was not read
    to its end."""

    def __init__(self, size: int, declared: bool, what: str = "body"):
        said = "declared " if declared else ""
        super().__init__(f"{what} of {said}{size} bytes is too large")
        self.size = size
        self.declared = declared


class BodyUndecodable(Exception):
    """The body's bytes do not decode as its ``Content-Encoding`` says."""

    def __init__(self, encoding: str, received: int):
        super().__init__(f"a body said to be {encoding} does not decode ({received} bytes read)")
        self.encoding = encoding
        self.received = received


@dataclass(frozen=True)
class Answer:
    status_code: int
    headers: Mapping[str, str]
    body: bytes


def send(
    session: requests.Session,
    method: str,
    url: str,
    *,
    headers: Mapping[str, str],
    timeouts: tuple[float, float],
    deadline_s: float,
    max_bytes: int,
    json_body: Any = None,
    data: bytes | None = None,
    params: Mapping[str, str] | None = None,
) -> Answer:
    """One HTTP call whose decoded answer is whole within ``deadline_s`` and at most
    ``max_bytes``.

    ``timeouts``: (connect, read) as requests takes them; the read timeout is the longest
    silence, cut to what is left of the deadline. Raises requests' errors, urllib3's (a break
    mid-body), BodyDeadlineExceeded, BodyTooLarge or BodyUndecodable."""
    deadline = time.monotonic() + deadline_s
    with open_stream(
        session,
        method,
        url,
        headers=headers,
        timeouts=timeouts,
        deadline_s=deadline_s,
        json_body=json_body,
        data=data,
        params=params,
    ) as response:  # closing an unread answer hangs up on the server
        body = read_body(
            response, deadline=deadline, read_timeout_s=timeouts[1], max_bytes=max_bytes
        )
    return Answer(response.status_code, response.headers, body)


def open_stream(
    session: requests.Session,
    method: str,
    url: str,
    *,
    headers: Mapping[str, str],
    timeouts: tuple[float, float],
    deadline_s: float,
    json_body: Any = None,
    data: bytes | None = None,
    params: Mapping[str, str] | None = None,
) -> requests.Response:
    """The answer's status and headers, its body not yet read (use it as a context manager)."""
    connect_s, read_s = timeouts
    return session.request(
        method,
        url,
        json=json_body,
        data=data,
        params=params,
        headers={"Accept-Encoding": ACCEPT_ENCODING, **headers},
        # Until the headers come, the wait is one silence: bound it by the deadline too.
        timeout=(connect_s, min(read_s, deadline_s)),
        stream=True,
    )


def read_body(
    response: requests.Response, *, deadline: float, read_timeout_s: float, max_bytes: int
) -> bytes:
    """The whole decoded body, if it ends before ``deadline`` (``time.monotonic()``) and is at
    most ``max_bytes``; raises BodyDeadlineExceeded, BodyTooLarge, BodyUndecodable, or
    urllib3's error when the connection breaks or stays silent for ``read_timeout_s``."""
    _check_declared(response, max_bytes)
    received = bytearray()
    for chunk in _decoded_chunks(response, deadline, read_timeout_s):
        received += chunk
        if len(received) > max_bytes:
            raise BodyTooLarge(len(received), declared=False)
    return bytes(received)


def read_lines(
    response: requests.Response, *, deadline: float, read_timeout_s: float, max_line_bytes: int
) -> Iterator[bytes]:
    """The decoded body's lines (without their ends), each read once and held only until it
    is yielded: linear time, and memory bounded by the longest line. A line longer than
    ``max_line_bytes`` raises BodyTooLarge; the other errors are read_body's."""
    pending = bytearray()
    scanned = 0  # pending[:scanned] holds no line end
    for chunk in _decoded_chunks(response, deadline, read_timeout_s):
        pending += chunk
        start = 0
        while (end := pending.find(b"\n", max(scanned, start))) >= 0:
            yield bytes(pending[start:end]).rstrip(b"\r")
            start = end + 1
        del pending[:start]
        scanned = len(pending)
        if scanned > max_line_bytes:
            raise BodyTooLarge(scanned, declared=False, what="line")
    if pending:
        yield bytes(pending).rstrip(b"\r")


def _decoded_chunks(
    response: requests.Response, deadline: float, read_timeout_s: float
) -> Iterator[bytes]:
    received = 0
    encoding = response.headers.get("Content-Encoding", "identity")
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BodyDeadlineExceeded(received)
        wait = min(read_timeout_s, remaining)
        _limit_wait(response, wait)
        try:
            chunk = response.raw.read1(_CHUNK, decode_content=True)
        except urllib3.exceptions.ReadTimeoutError:
            if wait < read_timeout_s:  # the deadline, not the server's silence, cut this wait
                raise BodyDeadlineExceeded(received) from None
            raise
        except urllib3.exceptions.DecodeError:
            raise BodyUndecodable(encoding, received) from None
        if not chunk:
            response.raw.release_conn()  # read to its end: the connection can be reused
            return
        received += len(chunk)
        yield chunk


def _check_declared(response: requests.Response, max_bytes: int) -> None:
    declared = response.headers.get("Content-Length", "").strip()
    if declared.isdigit() and int(declared) > max_bytes:
        raise BodyTooLarge(int(declared), declared=True)


def _limit_wait(response: requests.Response, seconds: float) -> None:
    # urllib3 sets the socket's timeout once per request (to the read timeout); shortening it
    # here bounds the next read by the deadline. urllib3 sets it afresh for the next request
    # on this connection, so nothing leaks into other calls.
    connection = response.raw.connection
    sock = getattr(connection, "sock", None)
    if sock is not None:
        sock.settimeout(max(seconds, 0.001))
