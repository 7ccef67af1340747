"""Where covers are stored (a local folder or S3) and the secret their keys are made with."""

from __future__ import annotations

from passport_pipeline.settings.values import Getter, SettingsError, choice

IMAGE_STORES = ("local", "s3")


def store_fields(get: Getter) -> dict:
    """The ``Settings`` fields of the store; a shared store's rules checked first."""
    image_store = choice(get("PASSPORT_IMAGE_STORE", "local"), IMAGE_STORES, "PASSPORT_IMAGE_STORE")
    s3_bucket = get("PASSPORT_S3_BUCKET")
    if image_store == "s3" and not s3_bucket:
        raise SettingsError("PASSPORT_IMAGE_STORE=s3 needs PASSPORT_S3_BUCKET")
    key_secret_in_env = get("PASSPORT_KEY_SECRET") is not None
    if image_store == "s3" and not key_secret_in_env:
        # A generated secret lives in one home: a second machine or container would make other
        # keys, find none of the stored covers, and pay for every one of them again.
        raise SettingsError(
            "PASSPORT_IMAGE_STORE=s3 needs PASSPORT_KEY_SECRET: a shared store must use one key "
            "secret everywhere, or each machine would generate its own, find none of the "
            "covers the others stored, and pay for them again"
        )
    return {
        "image_store": image_store,
        "key_secret_in_env": key_secret_in_env,
        "s3_bucket": s3_bucket,
        "s3_prefix": (get("PASSPORT_S3_PREFIX", "") or "").strip("/"),
        "public_base_url": (get("PASSPORT_PUBLIC_BASE_URL") or "").rstrip("/") or None,
    }
