"""The S3 image store (production), through dagster-aws: kept apart from ``image_store.py`` so
that only a deployment on S3 pays for importing boto3 and dagster-aws in each of its processes
(``definitions.py`` imports this module only for ``PASSPORT_IMAGE_STORE=s3``)."""

from __future__ import annotations

import threading

from botocore.exceptions import ClientError
from dagster import MetadataValue
from dagster_aws.s3 import S3Resource
from pydantic import PrivateAttr

from passport_pipeline.resources.image_store import (
    ImageStore,
    ImageStoreUnusableError,
    StoredObject,
)

# A presigned preview link's life: SigV4's longest (7 days). The month's preview keeps working
# for a week after the run; later, the step and the store still name every cover.
PRESIGNED_URL_TTL_S = 7 * 24 * 3600

_CLIENT_LOCK = threading.Lock()


class S3ImageStore(ImageStore):
    """An S3 bucket through dagster-aws; passports get the CDN URL or ``s3://bucket/key``."""

    s3: S3Resource
    bucket: str
    prefix: str = ""
    public_base_url: str | None = None

    _client: object | None = PrivateAttr(default=None)

    def step_modules(self) -> tuple[str, ...]:
        return ("boto3", "botocore.client", "botocore.session")

    @property
    def client(self):
        with _CLIENT_LOCK:  # steps in threads share this resource: one client, made once
            if self._client is None:
                self._client = self.s3.get_client()
            return self._client

    def preflight(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as error:
            code = str(error.response.get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchBucket"):
                raise ImageStoreUnusableError(
                    f"the S3 bucket {self.bucket} does not exist (PASSPORT_S3_BUCKET): "
                    "create it, or point the pipeline at the right one"
                ) from None
            if code in ("403", "AccessDenied"):
                raise ImageStoreUnusableError(
                    f"no access to the S3 bucket {self.bucket}: check the credentials' policy"
                ) from None
            raise  # anything else may pass: the step's retry policy decides

    def _full_key(self, key: str) -> str:
        prefix = self.prefix.strip("/")
        return f"{prefix}/{key}" if prefix else key

    def _url(self, full_key: str) -> str:
        if self.public_base_url:
            return f"{self.public_base_url.rstrip('/')}/{full_key}"
        return f"s3://{self.bucket}/{full_key}"

    def find(self, stem: str) -> StoredObject | None:
        full_stem = self._full_key(stem)
        listing = self.client.list_objects_v2(Bucket=self.bucket, Prefix=full_stem + ".", MaxKeys=5)
        keys = sorted(item["Key"] for item in listing.get("Contents", []))
        return StoredObject(keys[0], self._url(keys[0])) if keys else None

    def put(self, key: str, data: bytes, content_type: str) -> StoredObject:
        full_key = self._full_key(key)
        self.client.put_object(
            Bucket=self.bucket,
            Key=full_key,
            Body=data,
            ContentType=content_type,
            # Covers are private: owner only, never public-read. Not "private": buckets with
            # ACLs disabled (BucketOwnerEnforced, S3's default since 2023) accept only this
            # canned ACL or none, and fail other PUTs with AccessControlListNotSupported.
            ACL="bucket-owner-full-control",
        )
        return StoredObject(full_key, self._url(full_key))

    def _key_from_url(self, url: str) -> str | None:
        if self.public_base_url and url.startswith(self.public_base_url.rstrip("/") + "/"):
            return url[len(self.public_base_url.rstrip("/")) + 1 :]
        s3_prefix = f"s3://{self.bucket}/"
        return url[len(s3_prefix) :] if url.startswith(s3_prefix) else None

    def preview_src(self, url: str) -> str | None:
        if self.public_base_url and url.startswith(self.public_base_url.rstrip("/") + "/"):
            return url
        key = self._key_from_url(url)
        if key is None:
            return None
        # Covers are private: a signed link that expires, never a public object. Signing is
        # local (no request to S3).
        return self.client.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": key},
            ExpiresIn=PRESIGNED_URL_TTL_S,
        )

    def cover_metadata(self, url: str) -> dict[str, MetadataValue]:
        src = self.preview_src(url)
        return {} if src is None else {"cover": MetadataValue.url(src)}

    def exists_at(self, url: str) -> bool:
        key = self._key_from_url(url)
        if key is None:
            return False
        listing = self.client.list_objects_v2(Bucket=self.bucket, Prefix=key, MaxKeys=1)
        return any(item["Key"] == key for item in listing.get("Contents", []))
