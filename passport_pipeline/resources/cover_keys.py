"""The secret behind cover object keys, and the keys it makes."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from dagster import ConfigurableResource

from passport_pipeline.domain.keys import MIN_SECRET_LENGTH, WeakSecretError, cover_key_stem
from passport_pipeline.domain.months import Month

SECRET_VARIABLE = "PASSPORT_KEY_SECRET"


class CoverKeys(ConfigurableResource):
    """Makes ``covers/YYYY-MM/<token>`` stems from a secret.

    In production the secret comes from ``PASSPORT_KEY_SECRET``. The embedded home has none
    configured, so it generates one once and keeps it in ``secret_file`` (mode 0600): losing it
    would make every stored cover unfindable, and the next run would pay for them again.
    """

    secret: str | None = None
    secret_file: str | None = None

    def stem(self, user_id: int, month: Month) -> str:
        return cover_key_stem(self.resolve_secret(), user_id, month)

    def check(self) -> None:
        """Fail, naming where the secret comes from, unless it can make keys (checked once a run,
        before any user's step: a weak secret would fail every one of them)."""
        secret = self.resolve_secret()
        if len(secret) < MIN_SECRET_LENGTH:
            source = SECRET_VARIABLE if self.secret else f"the key secret file {self.secret_file}"
            raise WeakSecretError(
                f"{source} holds {len(secret)} characters: a cover key secret needs at least "
                f"{MIN_SECRET_LENGTH}, or object keys could be guessed. Set {SECRET_VARIABLE} to "
                "a long random value (e.g. `python -c 'import secrets; "
                "print(secrets.token_urlsafe(32))'`) and keep it: it is how stored covers are "
                "found again."
            )

    def resolve_secret(self) -> str:
        if self.secret:
            return self.secret
        if not self.secret_file:
            raise ValueError(f"no cover key secret: set {SECRET_VARIABLE}")
        path = Path(self.secret_file)
        if not path.exists():
            _create_secret_file(path)
        return path.read_text().strip()


def _create_secret_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(32))
    try:
        # link() fails if another process won the race: then its secret is the one kept.
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
