"""Covers that were paid for but are not stored yet, kept on this machine until they are.

An image model call costs money; an upload can fail after it (the store is down, the bucket
is not there yet). The cover step keeps the bytes here before it uploads, and a retry of the
step (or a re-execution of the run) uploads what is kept instead of asking the model again.
The file is removed once the store has the cover.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from dagster import ConfigurableResource

from passport_pipeline.domain.images import InvalidImageError, inspect_image
from passport_pipeline.domain.records import GeneratedImage


@dataclass(frozen=True)
class _Paths:
    data: Path
    facts: Path


class PendingCovers(ConfigurableResource):
    """A folder of paid-for covers awaiting upload, named by their (unguessable) key stems."""

    root: str

    def _paths(self, stem: str) -> _Paths:
        # The stem is "[prefix/]covers/YYYY-MM/<token>": one flat name per user and month.
        name = stem.replace("/", "_")
        folder = Path(self.root)
        return _Paths(folder / f"{name}.image", folder / f"{name}.json")

    def keep(self, stem: str, image: GeneratedImage) -> None:
        """Keep a generated cover until it is stored; written whole or not at all."""
        paths = self._paths(stem)
        paths.data.parent.mkdir(parents=True, exist_ok=True)
        facts = {"mime_type": image.mime_type, "model": image.model, "metadata": image.metadata}
        # The facts go first: a kept image is only ever read together with them.
        _write_atomically(paths.facts, json.dumps(facts).encode())
        _write_atomically(paths.data, image.data)

    def find(self, stem: str) -> GeneratedImage | None:
        """The cover kept for ``stem``, checked again; None if there is none (or it is unusable)."""
        paths = self._paths(stem)
        try:
            data = paths.data.read_bytes()
            facts = json.loads(paths.facts.read_text())
            info = inspect_image(data)
        except (FileNotFoundError, ValueError, InvalidImageError):
            return None
        return GeneratedImage(
            data=data,
            mime_type=info.mime_type,
            model=str(facts.get("model", "")),
            metadata=dict(facts.get("metadata") or {}),
            info=info,
        )

    def discard(self, stem: str) -> None:
        paths = self._paths(stem)
        for path in (paths.data, paths.facts):
            path.unlink(missing_ok=True)


def _write_atomically(path: Path, data: bytes) -> None:
    # Covers are private: the kept copy is readable by the pipeline's user only.
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as tmp:
        tmp.write(data)
        tmp.flush()
        os.fsync(tmp.fileno())
    os.replace(tmp.name, path)
