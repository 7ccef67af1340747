"""Object keys for covers: stable per user and month, not guessable from a user id.

The token is an HMAC of the user id and month under a secret, so anyone who knows a user id
still cannot find that user's cover, while a re-run of the same month finds the same object.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from passport_pipeline.domain.months import Month

MIN_SECRET_LENGTH = 16
# 128 bits of the HMAC: plenty against guessing, short enough for a URL.
_TOKEN_HEX_CHARS = 32


class WeakSecretError(ValueError):
    """The key secret is too short to keep object keys unguessable."""


def cover_token(secret: str, user_id: int, month: Month) -> str:
    if len(secret) < MIN_SECRET_LENGTH:
        raise WeakSecretError(
            f"the cover key secret must be at least {MIN_SECRET_LENGTH} characters long"
        )
    message = f"passport-cover:v1:{int(user_id)}:{month.key}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()[:_TOKEN_HEX_CHARS]


def month_folder(month: Month) -> str:
    """The folder of a month's covers, ``covers/YYYY-MM``: every cover URL holds it."""
    return f"covers/{month.key}"


def cover_key_stem(secret: str, user_id: int, month: Month, prefix: str = "") -> str:
    """The key without its extension: ``[prefix/]covers/YYYY-MM/<token>``."""
    stem = f"{month_folder(month)}/{cover_token(secret, user_id, month)}"
    prefix = prefix.strip("/")
    return f"{prefix}/{stem}" if prefix else stem


def cover_key(stem: str, extension: str) -> str:
    return f"{stem}.{extension.lstrip('.')}"


def cover_url_patterns(months: Iterable[Month]) -> list[str]:
    """SQL ``LIKE`` patterns that match a cover URL (file, s3 or https) of any of ``months``.

    Whatever the store, a cover's URL ends in ``/covers/YYYY-MM/<token>.<ext>``; the slash
    before ``covers`` keeps a bucket or prefix merely ending in "covers" from matching."""
    return [f"%/{month_folder(month)}/%" for month in months]
