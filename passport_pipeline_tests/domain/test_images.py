import base64
import io
import struct
import zlib

import pytest
from PIL import Image

from passport_pipeline.domain.images import (
    ImageTooLargeError,
    InvalidImageError,
    extension_for_mime,
    inspect_image,
    thumbnail_data_uri,
)


def encode(image_format: str, size=(96, 128), mode="RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, (120, 30, 40)).save(buffer, format=image_format)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("image_format", "mime", "extension"),
    [("PNG", "image/png", "png"), ("JPEG", "image/jpeg", "jpg"), ("WEBP", "image/webp", "webp")],
)
def test_real_images_are_identified(image_format, mime, extension):
    info = inspect_image(encode(image_format))
    assert (info.mime_type, info.extension, info.width, info.height) == (mime, extension, 96, 128)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"<html>quota exceeded</html>", "not a decodable image"),
        (encode("PNG")[:200], "not a decodable image"),  # truncated mid-stream
        (encode("PNG", size=(16, 16)), "only 16x16"),
        (encode("TIFF"), "format TIFF"),
    ],
)
def test_bad_bytes_are_refused_with_a_reason(data, message):
    with pytest.raises(InvalidImageError, match=message):
        inspect_image(data)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header(width: int, height: int) -> bytes:
    """A real PNG declaring ``width`` x ``height`` whose pixel data is one empty row."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    idat = zlib.compress(b"\0")
    signature = b"\x89PNG\r\n\x1a\n"
    return signature + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


@pytest.mark.parametrize(
    "size",
    [
        (10_000, 10_000),  # above MAX_IMAGE_PIXELS: Pillow warns
        (20_000, 20_000),  # above twice that: Pillow raises DecompressionBombError
    ],
)
def test_a_decompression_bomb_is_refused_from_its_header(size):
    assert size[0] * size[1] > Image.MAX_IMAGE_PIXELS
    # pytest turns warnings into errors, so a warning escaping would fail this test too.
    with pytest.raises(InvalidImageError, match="more pixels than a cover may have"):
        inspect_image(png_header(*size))


def test_an_image_above_the_byte_limit_is_refused_before_decoding():
    data = encode("PNG")
    assert inspect_image(data, max_bytes=len(data)).width == 96
    with pytest.raises(ImageTooLargeError, match=f"{len(data):,} bytes, more than the 100"):
        inspect_image(data, max_bytes=100)
    with pytest.raises(ImageTooLargeError):
        inspect_image(b"\0" * 101, max_bytes=100)  # not even an image: refused by size first


@pytest.mark.parametrize(
    ("mime", "extension"), [("image/png", "png"), ("IMAGE/JPEG", "jpg"), ("image/heic", None)]
)
def test_extension_for_mime(mime, extension):
    assert extension_for_mime(mime) == extension


@pytest.mark.parametrize(
    ("image_format", "mode", "size", "thumbnail_size"),
    [("PNG", "RGB", (768, 1024), (120, 160)), ("WEBP", "RGBA", (1024, 512), (160, 80))],
)
def test_a_thumbnail_is_a_small_jpeg_data_uri_of_the_same_shape(
    image_format, mode, size, thumbnail_size
):
    uri = thumbnail_data_uri(encode(image_format, size, mode))
    prefix = "data:image/jpeg;base64,"
    assert uri.startswith(prefix)
    with Image.open(io.BytesIO(base64.b64decode(uri[len(prefix) :]))) as thumbnail:
        assert (thumbnail.format, thumbnail.size) == ("JPEG", thumbnail_size)
        assert thumbnail.getpixel((10, 10)) == pytest.approx((120, 30, 40), abs=6)


def test_a_thumbnail_of_bad_bytes_is_refused():
    with pytest.raises(InvalidImageError):
        thumbnail_data_uri(b"not an image")


def test_an_undecodable_image_is_described_without_object_reprs():
    with pytest.raises(InvalidImageError) as raised:
        inspect_image(b"<html>quota exceeded</html>")
    message = str(raised.value)
    assert "cannot identify image file" in message
    assert " object at 0x" not in message
