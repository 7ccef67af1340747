import io

import pytest
from PIL import Image

from passport_pipeline.domain.images import InvalidImageError, extension_for_mime, inspect_image


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


@pytest.mark.parametrize(
    ("mime", "extension"), [("image/png", "png"), ("IMAGE/JPEG", "jpg"), ("image/heic", None)]
)
def test_extension_for_mime(mime, extension):
    assert extension_for_mime(mime) == extension
