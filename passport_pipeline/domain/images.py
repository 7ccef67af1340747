"""Checking that bytes from an image model are a real, whole image."""

from __future__ import annotations

import io
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


class InvalidImageError(ValueError):
    """The bytes are not an image a passport can show."""


@dataclass(frozen=True)
class ImageInfo:
    mime_type: str
    extension: str
    width: int
    height: int


def inspect_image(data: bytes) -> ImageInfo:
    """Identify and fully decode ``data``; raise InvalidImageError if it is not a usable image."""
    if not data:
        raise InvalidImageError("the image is empty (0 bytes)")
    try:
        with Image.open(io.BytesIO(data)) as image:
            image_format = image.format
            # load() decodes every pixel, which catches truncated files that verify() lets pass.
            image.load()
            width, height = image.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise InvalidImageError(
            f"the {len(data)} bytes returned are not a decodable image ({error})"
        ) from error
    if image_format not in _FORMATS:
        raise InvalidImageError(f"image format {image_format} is not one a passport can show")
    if min(width, height) < MIN_SIDE:
        raise InvalidImageError(f"the image is only {width}x{height} pixels")
    mime_type, extension = _FORMATS[image_format]
    return ImageInfo(mime_type, extension, width, height)


def extension_for_mime(mime_type: str) -> str | None:
    for known_mime, extension in _FORMATS.values():
        if known_mime == mime_type.lower():
            return extension
    return None
