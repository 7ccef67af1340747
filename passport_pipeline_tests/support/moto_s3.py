"""moto's standalone S3 server over real HTTP on 127.0.0.1, for tests.

    with MotoS3Server() as server:
        bucket = server.create_bucket()
        store = S3ImageStore(s3=S3Resource(endpoint_url=server.endpoint_url, ...), bucket=bucket)

The server runs in a daemon thread of this process (``moto.server.ThreadedMotoServer``) and
binds port 0, so the operating system picks a free port; ``endpoint_url`` names the port it
got. Code under test talks to it over HTTP like to any S3 endpoint: nothing in boto3 is
patched. Subprocesses reach it through ``AWS_ENDPOINT_URL`` (see ``environment``).
Credentials are moto's conventional dummies; moto does not check signatures.
"""

from __future__ import annotations

import uuid
from typing import Any

import boto3
from botocore.config import Config
from moto.server import ThreadedMotoServer

REGION = "us-east-1"
ACCESS_KEY_ID = "testing"
SECRET_ACCESS_KEY = "testing"


class MotoS3Server:
    """One moto server; ``start()``/``stop()`` or use it as a context manager."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._host = host
        self._server: ThreadedMotoServer | None = None
        self._client: Any = None
        self.endpoint_url = ""

    def start(self) -> MotoS3Server:
        if self._server is not None:
            raise RuntimeError("the moto server is already running")
        server = ThreadedMotoServer(ip_address=self._host, port=0, verbose=False)
        server.start()  # returns once the socket is bound
        host, port = server.get_host_and_port()
        self._server = server
        self.endpoint_url = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if self._client is not None:
            self._client.close()
            self._client = None
        if server is not None:
            server.stop()

    def __enter__(self) -> MotoS3Server:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def client(self) -> Any:
        """A plain boto3 S3 client for arranging and checking, separate from the code under test."""
        if self._server is None:
            raise RuntimeError("start the moto server first")
        if self._client is None:
            self._client = boto3.session.Session().client(
                "s3",
                endpoint_url=self.endpoint_url,
                region_name=REGION,
                aws_access_key_id=ACCESS_KEY_ID,
                aws_secret_access_key=SECRET_ACCESS_KEY,
                config=Config(retries={"max_attempts": 1, "mode": "standard"}),
            )
        return self._client

    def create_bucket(self, prefix: str = "passport-test") -> str:
        """A new, empty bucket with a name no other test uses; returns the name."""
        name = f"{prefix}-{uuid.uuid4().hex[:16]}"
        self.client.create_bucket(Bucket=name)
        return name

    def environment(self, bucket: str) -> dict[str, str]:
        """Variables that point boto3 (and the pipeline's settings) at this server and bucket."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            "AWS_DEFAULT_REGION": REGION,
            "PASSPORT_IMAGE_STORE": "s3",
            "PASSPORT_S3_BUCKET": bucket,
        }
