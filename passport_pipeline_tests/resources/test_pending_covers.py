"""Covers paid for but not yet stored survive on disk until an upload succeeds."""

import stat

from passport_pipeline.domain.records import GeneratedImage
from passport_pipeline.resources.pending_covers import PendingCovers
from passport_pipeline_tests.support.google_wire import model_image

STEM = "prod/covers/2026-10/" + "ab" * 16


def test_a_kept_cover_comes_back_whole_with_its_facts(tmp_path):
    pending = PendingCovers(root=str(tmp_path / "pending"))
    assert pending.find(STEM) is None
    image = GeneratedImage(
        model_image("png"), "image/png", "gemini-x", {"estimated_cost_usd": 0.039}
    )
    pending.keep(STEM, image)
    found = pending.find(STEM)
    assert found.data == image.data
    assert (found.model, found.mime_type, found.info.extension) == ("gemini-x", "image/png", "png")
    assert found.metadata == {"estimated_cost_usd": 0.039}
    # Covers are private: the kept copy is not readable by other users of the machine.
    for path in (tmp_path / "pending").iterdir():
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0
    pending.discard(STEM)
    assert pending.find(STEM) is None
    assert list((tmp_path / "pending").iterdir()) == []


def test_a_damaged_kept_cover_is_not_uploaded(tmp_path):
    pending = PendingCovers(root=str(tmp_path))
    pending.keep(STEM, GeneratedImage(model_image("png"), "image/png", "m"))
    [data] = tmp_path.glob("*.image")
    data.write_bytes(data.read_bytes()[:100])
    assert pending.find(STEM) is None
