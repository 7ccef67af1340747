"""Image stores: where covers are kept (a local folder by default, S3 in production: the S3
store is in ``s3_store.py``, so that a process on the local store never imports boto3)."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from dagster import ConfigurableResource, MetadataValue

from passport_pipeline.domain.images import (
    THUMBNAIL_MAX_SIDE,
    InvalidImageError,
    thumbnail_data_uri,
)

COVER_FILE_MODE = 0o644
# A user step's own thumbnail is smaller than the month's (about 3.5 KB against 5 KB): it is
# written once per user.
STEP_THUMBNAIL_SIDE = 120


@dataclass(frozen=True)
class StoredObject:
    key: str
    url: str


class ImageStoreUnusableError(RuntimeError):
    """The store cannot take covers at all (no such bucket, no access): no retry helps."""


class ImageStore(ConfigurableResource):
    """Keeps cover objects under keys like ``covers/YYYY-MM/<token>.<ext>``."""

    def preflight(self) -> None:
        """Check, before any user step pays for an image, that the store exists and answers."""

    def find(self, stem: str) -> StoredObject | None:
        """The object stored under ``stem.<any extension>``, if there is one."""
        raise NotImplementedError

    def put(self, key: str, data: bytes, content_type: str) -> StoredObject:
        """Store the whole object; when this returns, the object exists."""
        raise NotImplementedError

    def exists_at(self, url: str) -> bool:
        """Whether ``url`` (as written to a passport) names an object in this store."""
        raise NotImplementedError

    def step_modules(self) -> tuple[str, ...]:
        """Modules a cover step imports only when it first uses this store (see executor.py)."""
        return ()

    def preview_src(self, url: str) -> str | None:
        """An image source for the cover at ``url`` that a browser showing the Dagster UI can
        load, or None if there is none (the cover is gone, or not in this store)."""
        return None

    def cover_metadata(self, url: str) -> dict[str, MetadataValue]:
        """What a user's step shows about its cover in the UI: a link the browser can open."""
        return {}


class LocalImageStore(ImageStore):
    """A folder on this machine; passports get ``file://`` URLs."""

    root: str

    def _path(self, key: str) -> Path:
        root = Path(self.root).resolve()
        path = (root / key).resolve()
        if root not in path.parents:
            raise ValueError(f"object key {key!r} points outside the store")
        return path

    def find(self, stem: str) -> StoredObject | None:
        base = self._path(stem)
        if not base.parent.is_dir():
            return None
        for candidate in sorted(base.parent.glob(base.name + ".*")):
            if candidate.suffix != ".tmp" and candidate.is_file():
                key = candidate.relative_to(Path(self.root).resolve()).as_posix()
                return StoredObject(key, candidate.as_uri())
        return None

    def put(self, key: str, data: bytes, content_type: str) -> StoredObject:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename, so a crash never leaves a half-written cover that `find` would reuse.
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        # A temporary file is created 0600; a cover is meant to be served (by a web server or the
        # Dagster UI), so it is readable like any file this user writes. Its key is the secret.
        os.chmod(tmp.name, COVER_FILE_MODE)
        os.replace(tmp.name, path)
        return StoredObject(key, path.as_uri())

    def exists_at(self, url: str) -> bool:
        return self._file_at(url) is not None

    def _file_at(self, url: str) -> Path | None:
        parsed = urlparse(url)
        path = Path(unquote(parsed.path))
        return path if parsed.scheme == "file" and path.is_file() else None

    def preview_src(self, url: str, max_side: int = THUMBNAIL_MAX_SIDE) -> str | None:
        # A browser refuses file:// images on the UI's http:// page; a data: thumbnail it shows.
        path = self._file_at(url)
        if path is None:
            return None
        try:
            return thumbnail_data_uri(path.read_bytes(), max_side)
        except InvalidImageError:
            return None

    def cover_metadata(self, url: str) -> dict[str, MetadataValue]:
        # No link to a local file opens from the UI (file:// and data: navigations are blocked
        # from an http:// page): the path to copy, and the cover itself as a thumbnail.
        path = self._file_at(url)
        if path is None:
            return {}
        metadata: dict[str, MetadataValue] = {"cover": MetadataValue.path(str(path))}
        src = self.preview_src(url, STEP_THUMBNAIL_SIDE)
        if src is not None:
            metadata["cover_preview"] = MetadataValue.md(f"![cover]({src})")
        return metadata
