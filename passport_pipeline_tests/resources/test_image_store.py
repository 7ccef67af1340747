import base64
import io
import stat

import pytest
from dagster import MetadataValue
from PIL import Image

from passport_pipeline.domain.months import Month
from passport_pipeline.resources.cover_keys import CoverKeys
from passport_pipeline.resources.image_store import LocalImageStore


@pytest.fixture
def store(tmp_path) -> LocalImageStore:
    return LocalImageStore(root=str(tmp_path / "store"))


def test_put_then_find_by_stem_with_any_extension(store):
    assert store.find("covers/2026-10/abc") is None
    stored = store.put("covers/2026-10/abc.webp", b"RIFFdata", "image/webp")
    assert stored.key == "covers/2026-10/abc.webp"
    assert store.find("covers/2026-10/abc") == stored
    assert store.exists_at(stored.url)
    assert store.find("covers/2026-10/ab") is None


def test_a_leftover_temporary_file_is_not_a_cover(store, tmp_path):
    folder = tmp_path / "store" / "covers" / "2026-10"
    folder.mkdir(parents=True)
    (folder / "abc.x1y2.tmp").write_bytes(b"half")
    assert store.find("covers/2026-10/abc") is None


def test_exists_at_is_false_for_missing_and_foreign_urls(store, tmp_path):
    assert not store.exists_at((tmp_path / "nope.png").as_uri())
    assert not store.exists_at("s3://bucket/covers/x.png")


def test_keys_cannot_escape_the_store(store):
    with pytest.raises(ValueError, match="outside the store"):
        store.put("../../etc/passwd", b"x", "image/png")


def test_embedded_secret_is_created_once_private_and_kept(tmp_path):
    secret_file = tmp_path / "home" / "key_secret"
    keys = CoverKeys(secret_file=str(secret_file))
    first = keys.stem(7, Month(2026, 10))
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert CoverKeys(secret_file=str(secret_file)).stem(7, Month(2026, 10)) == first
    assert len(secret_file.read_text()) >= 32


def test_secret_from_environment_wins_over_the_file(tmp_path):
    keys = CoverKeys(secret="from-env-0123456789abcdef", secret_file=str(tmp_path / "key_secret"))
    keys.stem(7, Month(2026, 10))
    assert not (tmp_path / "key_secret").exists()


def test_a_stored_cover_is_readable_by_a_web_server(store):
    stored = store.put("covers/2026-10/abc.png", b"png", "image/png")
    mode = stat.S_IMODE(store._path(stored.key).stat().st_mode)
    assert mode & stat.S_IROTH and mode & stat.S_IRGRP, oct(mode)
    assert not mode & (stat.S_IWGRP | stat.S_IWOTH)


@pytest.mark.parametrize(
    ("secret", "source"),
    [("short", "PASSPORT_KEY_SECRET holds 5 characters"), ("x" * 15, "holds 15 characters")],
)
def test_a_weak_secret_is_refused_naming_the_variable(secret, source):
    with pytest.raises(ValueError, match=source):
        CoverKeys(secret=secret).check()


def test_a_weak_secret_file_is_named(tmp_path):
    secret_file = tmp_path / "key_secret"
    secret_file.write_text("tiny\n")
    with pytest.raises(ValueError, match=f"the key secret file {secret_file} holds 4 characters"):
        CoverKeys(secret_file=str(secret_file)).check()
    CoverKeys(secret="long-enough-secret-0123").check()


def cover_png(size=(768, 1024)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (20, 40, 90)).save(buffer, format="PNG")
    return buffer.getvalue()


def decoded_size(uri: str) -> tuple[int, int]:
    prefix = "data:image/jpeg;base64,"
    assert uri.startswith(prefix)
    with Image.open(io.BytesIO(base64.b64decode(uri[len(prefix) :]))) as image:
        return image.size


def test_a_local_cover_is_previewed_as_a_data_thumbnail(store):
    # The UI's page is http://: a browser shows no file:// image there (see test_ui.py).
    stored = store.put("covers/2026-10/abc.png", cover_png(), "image/png")
    assert decoded_size(store.preview_src(stored.url)) == (120, 160)


def test_no_preview_for_a_missing_or_broken_cover(store, tmp_path):
    assert store.preview_src((tmp_path / "gone.png").as_uri()) is None
    assert store.preview_src("s3://bucket/covers/abc.png") is None
    broken = store.put("covers/2026-10/bad.png", b"\x89PNG broken", "image/png")
    assert store.preview_src(broken.url) is None


def test_a_users_step_shows_the_covers_path_and_a_thumbnail(store):
    stored = store.put("covers/2026-10/abc.png", cover_png(), "image/png")
    metadata = store.cover_metadata(stored.url)
    assert metadata["cover"] == MetadataValue.path(str(store._path(stored.key)))
    markdown = metadata["cover_preview"].value
    assert markdown.startswith("![cover](data:image/jpeg;base64,") and markdown.endswith(")")
    assert decoded_size(markdown[len("![cover](") : -1]) == (90, 120)
