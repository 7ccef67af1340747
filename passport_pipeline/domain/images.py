"""Checking that bytes from an image model are a real, whole image."""

from __future__ import annotations

import base64
import io
import re
import threading
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

# Formats a browser shows, which is what a passport cover is for.
_FORMATS = {
    "PNG": ("image/png", "png"),
    "JPEG": ("image/jpeg", "jpg"),
    "WEBP": ("image/webp", "webp"),
    "GIF": ("image/gif", "gif"),
}
MIN_SIDE = 64
# A preview thumbnail: six fit in a metadata event of about 30 KB (see thumbnail_data_uri).
THUMBNAIL_MAX_SIDE = 160
THUMBNAIL_JPEG_QUALITY = 70
DEFAULT_MAX_IMAGE_BYTES = 20_000_000  # 20 MB: far above any real cover (a few MB at most)
# catch_warnings swaps the process-wide filter list: one thread at a time, or two threads'
# restores can leave each other's filter in place.
_WARNINGS_LOCK = threading.Lock()


class InvalidImageError(ValueError):
    """The bytes are not an image a passport can show."""


class ImageTooLargeError(InvalidImageError):
    """The image (or the answer carrying it) is larger than a cover may be."""


def check_image_size(size: int, max_bytes: int) -> None:
    """Refuse ``size`` bytes of image above ``max_bytes``, before anything decodes them."""
    if size > max_bytes:
        raise ImageTooLargeError(
            f"the image is {size:,} bytes, more than the {max_bytes:,} a cover may have"
        )


@dataclass(frozen=True)
class ImageInfo:
    mime_type: str
    extension: str
    width: int
    height: int


def inspect_image(data: bytes, max_bytes: int | None = None) -> ImageInfo:
    """Identify and fully decode ``data``; raise InvalidImageError if it is not a usable image.

    ``max_bytes`` is checked before decoding; an image of more pixels than Pillow's
    ``MAX_IMAGE_PIXELS`` (a decompression bomb) is refused from its header alone."""
    if not data:
        raise InvalidImageError("the image is empty (0 bytes)")
    if max_bytes is not None:
        check_image_size(len(data), max_bytes)
    try:
        with _open_refusing_bombs(data) as image:
            image_format = image.format
            # load() decodes every pixel, which catches truncated files that verify() lets pass.
            image.load()
            width, height = image.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise InvalidImageError(
            f"the image declares more pixels than a cover may have (a decompression bomb? {error})"
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise InvalidImageError(
            f"the {len(data)} bytes returned are not a decodable image ({_said(error)})"
        ) from error
    if image_format not in _FORMATS:
        raise InvalidImageError(f"image format {image_format} is not one a passport can show")
    if min(width, height) < MIN_SIDE:
        raise InvalidImageError(f"the image is only {width}x{height} pixels")
    mime_type, extension = _FORMATS[image_format]
    return ImageInfo(mime_type, extension, width, height)


# Pillow names the buffer it read: "cannot identify image file <_io.BytesIO object at 0x7f…>".
_OBJECT_REPR = re.compile(r"\s*<[\w.]+ object at 0x[0-9a-fA-F]+>")


def _said(error: Exception) -> str:
    """Pillow's message without the repr of the in-memory file it was reading."""
    return _OBJECT_REPR.sub("", str(error)).strip() or type(error).__name__


def _open_refusing_bombs(data: bytes) -> Image.Image:
    """Image.open, with Pillow's bomb warning (above MAX_IMAGE_PIXELS) raised, not printed."""
    with _WARNINGS_LOCK, warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        return Image.open(io.BytesIO(data))


def extension_for_mime(mime_type: str) -> str | None:
    for known_mime, extension in _FORMATS.values():
        if known_mime == mime_type.lower():
            return extension
    return None


def thumbnail_data_uri(data: bytes, max_side: int = THUMBNAIL_MAX_SIDE) -> str:
    """A small JPEG of the image as a ``data:`` URI, for a page that cannot fetch the original.

    The Dagster UI shows ``data:`` images in markdown metadata (its sanitizer allows the
    ``data`` protocol for ``src``), while a browser refuses ``file://`` images on an ``http://``
    page: this is how a cover kept on this machine is seen in the UI."""
    out = io.BytesIO()
    try:
        with _open_refusing_bombs(data) as image:
            image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
            image.convert("RGB").save(out, format="JPEG", quality=THUMBNAIL_JPEG_QUALITY)
    except (
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
        UnidentifiedImageError,
        OSError,
        ValueError,
    ) as error:
        raise InvalidImageError(
            f"no thumbnail of these {len(data)} bytes ({_said(error)})"
        ) from error
    return "data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode("ascii")
