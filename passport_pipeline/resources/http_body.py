"""Reading a streamed ``requests`` answer within a total deadline and a size limit.

requests' read timeout bounds each wait for the next bytes, never the whole answer: a server
that sends one byte every few seconds holds a call for as long as it likes. Here the body is
read as it arrives (``read1``: whatever one socket read returns), each wait is cut to what is
left of the deadline, and reading stops once the body is longer than anyone should pay for.
The caller opens the request with ``stream=True`` and closes the response; a response left
unread is closed with its connection, which the server sees as the client hanging up.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests
import urllib3

_CHUNK = 64 * 1024


class BodyDeadlineExceeded(Exception):
    """The deadline passed before the body ended."""

    def __init__(self, received: int):
        super().__init__(f"deadline passed after {received} bytes")
        self.received = received


class BodyTooLarge(Exception):
    """The body is (or says it is) longer than the limit; it was not read to its end."""

    def __init__(self, size: int, declared: bool):
        super().__init__(f"body of {'declared ' if declared else ''}{size} bytes is too large")
        self.size = size
        self.declared = declared


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
    json_body: Any,
    headers: Mapping[str, str],
    timeouts: tuple[float, float],
    deadline_s: float,
    max_bytes: int,
) -> Answer:
    """One HTTP call whose answer is whole within ``deadline_s`` and at most ``max_bytes``.

    ``timeouts``: (connect, read) as requests takes them; the read timeout is the longest
    silence, cut to what is left of the deadline. Raises requests' errors, urllib3's (a break
    mid-body), BodyDeadlineExceeded or BodyTooLarge."""
    deadline = time.monotonic() + deadline_s
    connect_s, read_s = timeouts
    response = session.request(
        method,
        url,
        json=json_body,
        headers=dict(headers),
        # Until the headers come, the wait is one silence: bound it by the deadline too.
        timeout=(connect_s, min(read_s, deadline_s)),
        stream=True,
    )
    with response:  # closing an unread answer hangs up on the server
        body = read_body(response, deadline=deadline, read_timeout_s=read_s, max_bytes=max_bytes)
    return Answer(response.status_code, response.headers, body)


def read_body(
    response: requests.Response, *, deadline: float, read_timeout_s: float, max_bytes: int
) -> bytes:
    """The whole body, if it ends before ``deadline`` (``time.monotonic()``) and is at most
    ``max_bytes``; raises BodyDeadlineExceeded, BodyTooLarge, or urllib3's error when the
    connection breaks or stays silent for ``read_timeout_s``."""
    declared = response.headers.get("Content-Length", "").strip()
    if declared.isdigit() and int(declared) > max_bytes:
        raise BodyTooLarge(int(declared), declared=True)
    received = bytearray()
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BodyDeadlineExceeded(len(received))
        wait = min(read_timeout_s, remaining)
        _limit_wait(response, wait)
        try:
            chunk = response.raw.read1(_CHUNK)
        except urllib3.exceptions.ReadTimeoutError:
            if wait < read_timeout_s:  # the deadline, not the server's silence, cut this wait
                raise BodyDeadlineExceeded(len(received)) from None
            raise
        if not chunk:
            response.raw.release_conn()  # read to its end: the connection can be reused
            return bytes(received)
        received += chunk
        if len(received) > max_bytes:
            raise BodyTooLarge(len(received), declared=False)


def _limit_wait(response: requests.Response, seconds: float) -> None:
    # urllib3 sets the socket's timeout once per request (to the read timeout); shortening it
    # here bounds the next read by the deadline. urllib3 sets it afresh for the next request
    # on this connection, so nothing leaks into other calls.
    connection = response.raw.connection
    sock = getattr(connection, "sock", None)
    if sock is not None:
        sock.settimeout(max(seconds, 0.001))
