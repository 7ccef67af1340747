"""The production S3 image store against moto's S3 server over HTTP (boto3 unpatched)."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlparse

import pytest
import requests
from botocore.exceptions import ClientError
from dagster import MetadataValue, UrlMetadataValue, build_resources
from dagster_aws.s3 import S3Resource

from passport_pipeline.definitions import image_store_for
from passport_pipeline.resources.image_store import StoredObject
from passport_pipeline.resources.s3_store import PRESIGNED_URL_TTL_S, S3ImageStore
from passport_pipeline.settings import load_settings
from passport_pipeline_tests.support.moto_s3 import MotoS3Server

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"\x00" * 24
CDN = "https://cdn.example"
PUBLIC_GROUPS = (
    "http://acs.amazonaws.com/groups/global/AllUsers",
    "http://acs.amazonaws.com/groups/global/AuthenticatedUsers",
)


def make_store(server: MotoS3Server, bucket: str, **fields) -> S3ImageStore:
    return S3ImageStore(
        s3=S3Resource(
            endpoint_url=server.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        ),
        bucket=bucket,
        **fields,
    )


@pytest.fixture
def bucket(moto_s3: MotoS3Server) -> str:
    return moto_s3.create_bucket()


@pytest.fixture
def store(moto_s3: MotoS3Server, bucket: str) -> S3ImageStore:
    return make_store(moto_s3, bucket)


def test_put_stores_the_bytes_with_their_content_type(store, bucket, moto_s3):
    stored = store.put("covers/2026-10/abc.webp", WEBP, "image/webp")

    assert stored == StoredObject(
        "covers/2026-10/abc.webp", f"s3://{bucket}/covers/2026-10/abc.webp"
    )
    head = moto_s3.client.head_object(Bucket=bucket, Key="covers/2026-10/abc.webp")
    assert head["ContentType"] == "image/webp"
    assert head["ContentLength"] == len(WEBP)
    body = moto_s3.client.get_object(Bucket=bucket, Key="covers/2026-10/abc.webp")["Body"]
    assert body.read() == WEBP


def test_objects_are_private_even_in_a_public_read_bucket(moto_s3):
    bucket = moto_s3.create_bucket()
    moto_s3.client.put_bucket_acl(Bucket=bucket, ACL="public-read")
    make_store(moto_s3, bucket).put("covers/2026-10/abc.png", PNG, "image/png")

    grants = moto_s3.client.get_object_acl(Bucket=bucket, Key="covers/2026-10/abc.png")["Grants"]
    assert [grant["Permission"] for grant in grants] == ["FULL_CONTROL"]
    assert grants[0]["Grantee"]["Type"] == "CanonicalUser"
    assert not [g for g in grants if g["Grantee"].get("URI") in PUBLIC_GROUPS]


def test_the_acl_is_one_that_acl_disabled_buckets_accept(moto_s3):
    # S3 rejects every ACL but bucket-owner-full-control on buckets whose ObjectOwnership is
    # BucketOwnerEnforced (the default for new buckets); moto does not, so look at the wire.
    bucket = moto_s3.create_bucket()
    moto_s3.client.put_bucket_ownership_controls(
        Bucket=bucket,
        OwnershipControls={"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
    )
    store = make_store(moto_s3, bucket)
    sent = []
    store.client.meta.events.register(
        "before-send.s3.PutObject", lambda request, **_: sent.append(dict(request.headers))
    )

    store.put("covers/2026-10/abc.png", PNG, "image/png")

    assert len(sent) == 1
    acl_headers = {
        name.lower(): value.decode() if isinstance(value, bytes) else value
        for name, value in sent[0].items()
        if name.lower().startswith(("x-amz-acl", "x-amz-grant"))
    }
    assert acl_headers == {"x-amz-acl": "bucket-owner-full-control"}
    assert moto_s3.client.head_object(Bucket=bucket, Key="covers/2026-10/abc.png")


def test_find_returns_the_object_under_the_stem_with_any_extension(store, bucket):
    assert store.find("covers/2026-10/abc") is None

    stored = store.put("covers/2026-10/abc.webp", WEBP, "image/webp")

    assert store.find("covers/2026-10/abc") == stored
    assert store.find("covers/2026-10/ab") is None
    assert store.find("covers/2026-11/abc") is None


def test_find_does_not_take_a_longer_stem_for_the_stem(store):
    store.put("covers/2026-10/stem2.png", PNG, "image/png")
    store.put("covers/2026-10/stem-old.png", PNG, "image/png")
    store.put("covers/2026-10/stem/nested.png", PNG, "image/png")

    assert store.find("covers/2026-10/stem") is None

    stored = store.put("covers/2026-10/stem.png", PNG, "image/png")
    assert store.find("covers/2026-10/stem") == stored


def test_the_prefix_goes_before_covers(moto_s3, bucket):
    store = make_store(moto_s3, bucket, prefix="/prod/")

    stored = store.put("covers/2026-10/abc.png", PNG, "image/png")

    assert stored.key == "prod/covers/2026-10/abc.png"
    assert stored.url == f"s3://{bucket}/prod/covers/2026-10/abc.png"
    listing = moto_s3.client.list_objects_v2(Bucket=bucket)
    assert [item["Key"] for item in listing["Contents"]] == ["prod/covers/2026-10/abc.png"]
    assert store.find("covers/2026-10/abc") == stored
    assert make_store(moto_s3, bucket).find("covers/2026-10/abc") is None
    assert store.exists_at(stored.url)


def test_urls_use_the_public_base_when_configured(moto_s3, bucket):
    store = make_store(moto_s3, bucket, prefix="prod", public_base_url=CDN + "/")

    stored = store.put("covers/2026-10/abc.png", PNG, "image/png")

    assert stored.url == f"{CDN}/prod/covers/2026-10/abc.png"
    assert store.find("covers/2026-10/abc") == stored
    assert store.exists_at(stored.url)
    assert not store.exists_at(f"{CDN}/prod/covers/2026-10/missing.png")
    assert not store.exists_at("https://other-cdn.example/prod/covers/2026-10/abc.png")


def signed_for_seconds(url: str) -> float:
    """How long a presigned URL stays valid: SigV4 says it, SigV2 gives the end (botocore signs
    with either, by region and endpoint)."""
    query = parse_qs(urlparse(url).query)
    if "X-Amz-Expires" in query:
        assert query["X-Amz-Signature"]
        return float(query["X-Amz-Expires"][0])
    assert query["Signature"]
    return float(query["Expires"][0]) - time.time()


def test_a_private_cover_is_previewed_through_a_presigned_link_that_expires(store, bucket):
    stored = store.put("covers/2026-10/abc.png", PNG, "image/png")
    src = store.preview_src(stored.url)
    assert signed_for_seconds(src) == pytest.approx(PRESIGNED_URL_TTL_S, abs=120)
    assert urlparse(src).path == f"/{bucket}/covers/2026-10/abc.png"
    # What the operator's browser does with it: a plain GET over HTTP.
    answer = requests.get(src, timeout=10)
    assert (answer.status_code, answer.content) == (200, PNG)
    # The step's metadata links the same object the same way: signed when it is asked for, so
    # its expiry may be a second later than the link above.
    metadata = store.cover_metadata(stored.url)
    assert set(metadata) == {"cover"} and isinstance(metadata["cover"], UrlMetadataValue)
    link = metadata["cover"].url
    assert urlparse(link).path == f"/{bucket}/covers/2026-10/abc.png"
    assert signed_for_seconds(link) == pytest.approx(PRESIGNED_URL_TTL_S, abs=120)
    assert requests.get(link, timeout=10).content == PNG


def test_a_cover_under_the_public_base_is_previewed_at_its_public_url(moto_s3, bucket):
    store = make_store(moto_s3, bucket, public_base_url=CDN)
    stored = store.put("covers/2026-10/abc.png", PNG, "image/png")
    assert store.preview_src(stored.url) == f"{CDN}/covers/2026-10/abc.png"
    assert store.cover_metadata(stored.url) == {"cover": MetadataValue.url(stored.url)}


def test_no_preview_for_a_url_of_another_store(store):
    assert store.preview_src("s3://another-bucket/covers/abc.png") is None
    assert store.preview_src("file:///tmp/covers/abc.png") is None
    assert store.cover_metadata("s3://another-bucket/covers/abc.png") == {}


def test_exists_at_is_true_only_for_objects_in_this_bucket(store, bucket, moto_s3):
    stored = store.put("covers/2026-10/abc.png", PNG, "image/png")
    other = moto_s3.create_bucket()
    moto_s3.client.put_object(Bucket=other, Key="covers/2026-10/zzz.png", Body=PNG)

    assert store.exists_at(stored.url)
    assert not store.exists_at(f"s3://{bucket}/covers/2026-10/missing.png")
    assert not store.exists_at(f"s3://{other}/covers/2026-10/abc.png")
    assert not store.exists_at(f"s3://{other}/covers/2026-10/zzz.png")
    assert not store.exists_at("file:///tmp/covers/2026-10/abc.png")
    assert not store.exists_at("https://cdn.example/covers/2026-10/abc.png")
    assert not store.exists_at(f"s3://{bucket}/")
    assert not store.exists_at("")


def test_a_key_that_is_a_prefix_of_another_is_not_taken_as_existing(store, bucket):
    store.put("covers/x.png.bak", PNG, "image/png")
    store.put("covers/x.png0", PNG, "image/png")

    assert not store.exists_at(f"s3://{bucket}/covers/x.png")
    assert not store.exists_at(f"s3://{bucket}/covers/x.pn")

    store.put("covers/x.png", PNG, "image/png")
    assert store.exists_at(f"s3://{bucket}/covers/x.png")


@pytest.mark.filterwarnings(
    # Dagster's build_resources calls its own deprecated API; nothing of ours to fix.
    "ignore:InitResourceContext.dagster_run is deprecated:DeprecationWarning"
)
def test_production_wiring_reads_boto3s_standard_environment(moto_s3, monkeypatch, tmp_path):
    # In-process, the S3Resource() built by image_store_for finds endpoint, region and
    # credentials through boto3's own chain, so this test sets the AWS_* variables with
    # monkeypatch (restored afterwards) and clears the ones that would take precedence.
    bucket = moto_s3.create_bucket()
    for name, value in moto_s3.environment(bucket).items():
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings(
        {
            "PASSPORT_HOME": str(tmp_path / "home"),
            "PASSPORT_IMAGE_STORE": "s3",
            "PASSPORT_S3_BUCKET": bucket,
            "PASSPORT_S3_PREFIX": "prod",
            "PASSPORT_PUBLIC_BASE_URL": CDN,
            "PASSPORT_KEY_SECRET": "s3-wiring-secret-0123456789",
        }
    )

    store = image_store_for(settings)
    assert isinstance(store, S3ImageStore)
    assert store.s3.endpoint_url is None  # nothing hand-made: the endpoint comes from AWS_*

    # The way a job step gets it: through Dagster's resource initialisation.
    with build_resources({"image_store": store}) as resources:
        initialised = resources.image_store
        assert initialised.find("covers/2026-10/abc") is None
        stored = initialised.put("covers/2026-10/abc.png", PNG, "image/png")
        assert initialised.find("covers/2026-10/abc") == stored
        assert initialised.exists_at(stored.url)

    assert stored == StoredObject(
        "prod/covers/2026-10/abc.png", f"{CDN}/prod/covers/2026-10/abc.png"
    )
    head = moto_s3.client.head_object(Bucket=bucket, Key="prod/covers/2026-10/abc.png")
    assert head["ContentType"] == "image/png"


def test_s3_env_names_a_fresh_bucket_on_the_server(s3_env, moto_s3):
    assert s3_env["AWS_ENDPOINT_URL"] == moto_s3.endpoint_url
    assert s3_env["PASSPORT_IMAGE_STORE"] == "s3"
    listing = moto_s3.client.list_objects_v2(Bucket=s3_env["PASSPORT_S3_BUCKET"])
    assert listing["KeyCount"] == 0
    settings = load_settings({**s3_env, "PASSPORT_KEY_SECRET": "shared-secret-0123456789"})
    assert (settings.image_store, settings.s3_bucket) == ("s3", s3_env["PASSPORT_S3_BUCKET"])


def test_uploading_to_a_missing_bucket_raises_and_stores_nothing(moto_s3):
    missing = "passport-test-no-such-bucket"
    store = make_store(moto_s3, missing)

    with pytest.raises(ClientError) as raised:
        store.put("covers/2026-10/abc.png", PNG, "image/png")

    assert raised.value.response["Error"]["Code"] == "NoSuchBucket"
    buckets = [b["Name"] for b in moto_s3.client.list_buckets()["Buckets"]]
    assert missing not in buckets
    with pytest.raises(ClientError):
        store.find("covers/2026-10/abc")
