"""How Google's front end puts an answer on the wire, for the fake Gemini server.

Recorded real traffic: ``transfer-encoding: chunked`` (no Content-Length), ``content-encoding:
gzip`` whenever the client offers gzip, ``server: scaffolding on HTTPServer2``; an image answer
is a 1.3-2 MB PNG at the model's resolution for the aspect ratio (864x1184 for 3:4), base64 in
JSON. This module makes such images and bodies, cheaply enough for a test suite:

- an image is drawn once per (format, aspect ratio) and its base64 shared by every answer;
- a JSON answer names it by a marker (``image_marker``), replaced on the wire;
- a gzip body is assembled from independently deflated segments (each ends on a full flush,
  so segments do not refer to one another), and an image's deflated base64 is cached: one
  answer costs a CRC and a few small compressions, not 90 ms of deflate.

``plain`` wire (Content-Length, no compression) is the old behaviour, kept for the few tests
that need a declared length or a byte-by-byte drip.
"""

from __future__ import annotations

import io
import json
import random
import struct
import threading
import zlib
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from PIL import Image

# What gemini-2.5-flash-image answers for each aspect ratio (Google's image-generation guide).
RESOLUTIONS = {
    "1:1": (1024, 1024),
    "2:3": (832, 1248),
    "3:2": (1248, 832),
    "3:4": (864, 1184),
    "4:3": (1184, 864),
    "4:5": (896, 1152),
    "5:4": (1152, 896),
    "9:16": (768, 1344),
    "16:9": (1344, 768),
    "21:9": (1536, 672),
}
# google.rpc.Code, as a batch's per-request errors carry them (an integer, no status string).
GRPC_CODES = {400: 3, 401: 16, 403: 7, 404: 5, 409: 10, 429: 8, 499: 1, 500: 13, 503: 14, 504: 4}
FRONT_END_HEADERS = (
    ("Vary", "Origin"),
    ("Vary", "X-Origin"),
    ("Vary", "Referer"),
    ("Server", "scaffolding on HTTPServer2"),
    ("X-XSS-Protection", "0"),
    ("X-Frame-Options", "SAMEORIGIN"),
    ("X-Content-Type-Options", "nosniff"),
)
_MARK = "@@fake-image:"
_CHUNK = 16 * 1024
_LEVEL = 1  # what we pay per answer; the client decodes any level alike


@lru_cache(maxsize=32)
def model_image(image_format: str = "png", aspect_ratio: str = "3:4") -> bytes:
    """A real image at the model's resolution for ``aspect_ratio``; a PNG is about 1.7 MB, as
    real covers are 1.3-2 MB (seeded noise in two channels keeps PNG from compressing it
    away). The same bytes every time."""
    width, height = RESOLUTIONS.get(aspect_ratio, RESOLUTIONS["1:1"])
    rng = random.Random(f"{image_format} {aspect_ratio}")
    red = Image.frombytes("L", (width, height), rng.randbytes(width * height))
    blue = Image.frombytes("L", (width, height), rng.randbytes(width * height))
    green = Image.linear_gradient("L").resize((width, height))
    image = Image.merge(
        "RGB", (red.point(lambda v: 96 + v // 8), green, blue.point(lambda v: 120 + v // 16))
    )
    buffer = io.BytesIO()
    fmt = "JPEG" if image_format.lower() in ("jpg", "jpeg") else image_format.upper()
    image.save(buffer, format=fmt, **({"quality": 95} if fmt in ("JPEG", "WEBP") else {}))
    return buffer.getvalue()


@lru_cache(maxsize=32)
def image_base64(image_format: str, aspect_ratio: str) -> str:
    import base64

    return base64.b64encode(model_image(image_format, aspect_ratio)).decode()


def image_marker(image_format: str, aspect_ratio: str) -> str:
    """Stands for the image's base64 in an answer's JSON until the answer is sent."""
    return f"{_MARK}{image_format}:{aspect_ratio}@@"


def grpc_status(http_status: int, message: str) -> dict[str, Any]:
    """A ``google.rpc.Status`` as a batch's per-request error carries it."""
    return {"code": GRPC_CODES.get(http_status, 2), "message": message}


def json_segments(payload: Any) -> list[tuple[str, Any]]:
    """The payload's JSON as segments: ("text", bytes) and ("image", (format, ratio))."""
    text = json.dumps(payload, separators=(",", ":"))
    segments: list[tuple[str, Any]] = []
    while (start := text.find(_MARK)) >= 0:
        end = text.index("@@", start + len(_MARK))
        image_format, _, ratio = text[start + len(_MARK) : end].partition(":")
        segments.append(("text", text[:start].encode()))
        segments.append(("image", (image_format, ratio)))
        text = text[end + 2 :]
    segments.append(("text", text.encode()))
    return segments


def plain_bytes(segments: list[tuple[str, Any]]) -> bytes:
    return b"".join(_raw(kind, value) for kind, value in segments)


def gzip_pieces(segments: list[tuple[str, Any]]) -> Iterator[bytes]:
    """The segments as one gzip member, piece by piece (a valid stream when concatenated)."""
    yield b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # gzip header: deflate, no name, no mtime
    crc, size = 0, 0
    for kind, value in segments:
        if kind == "image":
            deflated, image_crc, image_size = _deflated_image(*value)
            yield deflated
            crc, size = _crc_combine(crc, image_crc, image_size), size + image_size
        else:
            compressor = zlib.compressobj(_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
            yield compressor.compress(value) + compressor.flush(zlib.Z_FULL_FLUSH)
            crc, size = zlib.crc32(value, crc), size + len(value)
    final = zlib.compressobj(_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
    yield final.flush(zlib.Z_FINISH)  # an empty final block ends the deflate stream
    yield struct.pack("<II", crc, size & 0xFFFFFFFF)


def chunked(pieces: Iterator[bytes]) -> Iterator[bytes]:
    """HTTP/1.1 chunked framing of the pieces, in chunks of at most 16 KB."""
    for piece in pieces:
        for offset in range(0, len(piece), _CHUNK):
            part = piece[offset : offset + _CHUNK]
            yield b"%x\r\n%s\r\n" % (len(part), part)
    yield b"0\r\n\r\n"


def segment_size(kind: str, value: Any) -> int:
    return len(image_base64(*value)) if kind == "image" else len(value)


def gzip_bomb(inflated_bytes: int) -> Iterator[bytes]:
    """A gzip member that inflates to ``inflated_bytes`` (the start of a JSON answer, then
    spaces) from about a thousandth of that: one deflated MB of spaces, repeated (each ends on
    a full flush, so the copies stand alone). Its trailer is honest, so a client that read it
    all would find it valid."""
    head = b'{"candidates": [{"content": {"parts": [{"text": "'
    block = b" " * (1 << 20)
    compressor = zlib.compressobj(_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
    yield b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    yield compressor.compress(head) + compressor.flush(zlib.Z_FULL_FLUSH)
    repeated = zlib.compressobj(_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
    deflated_block = repeated.compress(block) + repeated.flush(zlib.Z_FULL_FLUSH)
    crc, block_crc = zlib.crc32(head), zlib.crc32(block)
    copies = max(0, inflated_bytes - len(head)) // len(block)
    for _ in range(copies):
        yield deflated_block
        crc = _crc_combine(crc, block_crc, len(block))
    yield zlib.compressobj(_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS).flush(zlib.Z_FINISH)
    yield struct.pack("<II", crc, (len(head) + copies * len(block)) & 0xFFFFFFFF)


def accepts_gzip(accept_encoding: str | None) -> bool:
    codings = [c.split(";")[0].strip().lower() for c in (accept_encoding or "").split(",")]
    return "gzip" in codings


def _raw(kind: str, value: Any) -> bytes:
    return image_base64(*value).encode() if kind == "image" else value


_DEFLATED: dict[tuple[str, str], tuple[bytes, int, int]] = {}
_DEFLATED_LOCK = threading.Lock()


def _deflated_image(image_format: str, ratio: str) -> tuple[bytes, int, int]:
    with _DEFLATED_LOCK:
        if (image_format, ratio) not in _DEFLATED:
            data = image_base64(image_format, ratio).encode()
            compressor = zlib.compressobj(_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
            deflated = compressor.compress(data) + compressor.flush(zlib.Z_FULL_FLUSH)
            _DEFLATED[(image_format, ratio)] = (deflated, zlib.crc32(data), len(data))
        return _DEFLATED[(image_format, ratio)]


def _crc_combine(crc1: int, crc2: int, len2: int) -> int:
    """zlib's crc32_combine (not exposed by Python's zlib): the CRC of A+B from CRC(A),
    CRC(B) and len(B), by GF(2) matrix powers, as zlib does it."""
    if len2 <= 0:
        return crc1
    odd = [0xEDB88320] + [1 << n for n in range(31)]  # the operator for one zero bit
    even = _square(odd)  # two zero bits
    odd = _square(even)  # four zero bits
    while True:
        even = _square(odd)  # first pass: one zero byte
        if len2 & 1:
            crc1 = _times(even, crc1)
        len2 >>= 1
        if not len2:
            break
        odd = _square(even)
        if len2 & 1:
            crc1 = _times(odd, crc1)
        len2 >>= 1
        if not len2:
            break
    return crc1 ^ crc2


def _times(matrix: list[int], vector: int) -> int:
    result, index = 0, 0
    while vector:
        if vector & 1:
            result ^= matrix[index]
        vector >>= 1
        index += 1
    return result


def _square(matrix: list[int]) -> list[int]:
    return [_times(matrix, row) for row in matrix]
