"""The lake as a Dagster resource, and the one place a lake location string becomes a LakeStore.

Why one location string rather than separate local/S3 resources: the same definitions run embedded
(a folder under ``.lake/``) and against a real bucket, switched by ``CUSTOMER360_LAKE`` alone, so no
asset or sensor ever branches on the backend. CLIs and tests go through ``open_lake`` so they exercise
exactly the construction path production uses.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path

import dagster as dg
from pydantic import Field

from customer360.lake.local import LocalLakeStore
from customer360.lake.s3 import S3LakeStore, make_s3_client
from customer360.lake.store import LakeStore

DEFAULT_LOCAL_LAKE = Path(".lake") / "telco-customer360-pipeline"
S3_SCHEME = "s3://"


class LakeResource(dg.ConfigurableResource):
    """Where the lake lives; ``store()`` gives the LakeStore for it."""

    location: str = Field(
        description="A local folder laid out like the bucket, or s3://bucket[/prefix].",
    )
    endpoint_url: str | None = Field(
        default=None,
        description="S3-compatible endpoint (MinIO, moto, ...). None means AWS itself.",
    )
    region_name: str | None = Field(default=None, description="AWS region of the bucket.")

    def store(self) -> LakeStore:
        return self._store

    # Dagster resources are frozen pydantic models; cached_property is the sanctioned way to keep
    # derived state on one (its config ignores cached_property), and it means one boto3 client per
    # resource instance instead of one per call. Dagster builds a fresh instance per run.
    @cached_property
    def _store(self) -> LakeStore:
        if self.location.startswith(S3_SCHEME):
            bucket, _, prefix = self.location[len(S3_SCHEME) :].partition("/")
            if not bucket:
                raise ValueError(f"lake location {self.location!r} names no bucket")
            # Our own client rather than dagster_aws's S3Resource: that one has no timeouts (see lake.s3).
            client = make_s3_client(self.endpoint_url, self.region_name)
            return S3LakeStore(client, bucket, prefix)
        root = Path(self.location).expanduser()
        root.mkdir(parents=True, exist_ok=True)
        return LocalLakeStore(root)


def _env(*names: str) -> str | None:
    """The first of ``names`` set to a non-empty value (an exported-but-empty var means unset)."""
    for name in names:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def lake_resource_from_env() -> LakeResource:
    """The LakeResource the environment asks for, defaulting to the embedded folder lake.

    Relative folders are made absolute here, at definition load, because the webserver, daemon and
    run workers do not necessarily share a working directory.
    """
    location = _env("CUSTOMER360_LAKE") or str(DEFAULT_LOCAL_LAKE)
    if not location.startswith(S3_SCHEME):
        location = str(Path(location).expanduser().absolute())
    return LakeResource(
        location=location,
        # boto3 would pick up AWS_ENDPOINT_URL[_S3] by itself; passing it explicitly makes the
        # endpoint visible in the resource's config in the Dagster UI.
        endpoint_url=_env("CUSTOMER360_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
        # botocore itself only reads AWS_DEFAULT_REGION; AWS_REGION is what most other tools set.
        region_name=_env("AWS_REGION", "AWS_DEFAULT_REGION"),
    )


def open_lake(location: str, endpoint_url: str | None = None, region_name: str | None = None) -> LakeStore:
    """A LakeStore for ``location`` (folder or ``s3://bucket[/prefix]``), built like the resource's."""
    return LakeResource(location=location, endpoint_url=endpoint_url, region_name=region_name).store()
