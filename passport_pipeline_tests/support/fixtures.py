"""Pytest fixtures for the real protocol peers in ``support/`` (moto's S3 server).

Registered from ``passport_pipeline_tests/conftest.py`` with
``pytest_plugins = ["passport_pipeline_tests.support.fixtures"]``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from passport_pipeline_tests.support.moto_s3 import MotoS3Server


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[MotoS3Server]:
    """moto's S3 server over HTTP on 127.0.0.1, one per test session (per xdist worker).

    Yields a ``MotoS3Server``: ``.endpoint_url``, ``.create_bucket()`` (a fresh, uniquely
    named bucket) and ``.client`` (a boto3 client for checking what landed). Tests share the
    server, so each should use its own bucket.
    """
    with MotoS3Server() as server:
        yield server


@pytest.fixture
def s3_env(moto_s3: MotoS3Server) -> dict[str, str]:
    """Environment variables for a subprocess that should store covers in a fresh bucket.

    Only the variables to add: AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
    AWS_DEFAULT_REGION, PASSPORT_IMAGE_STORE=s3, PASSPORT_S3_BUCKET. ``os.environ`` is not
    touched; pass ``env={**os.environ, **s3_env}`` to the subprocess. The bucket's name is
    ``s3_env["PASSPORT_S3_BUCKET"]``.
    """
    return moto_s3.environment(moto_s3.create_bucket())
