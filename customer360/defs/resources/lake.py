"""The lake as a Dagster resource, and the one place a lake location string becomes a LakeStore.

Why one location string rather than separate local/S3 resources: the same definitions run embedded
(a folder under ``.lake/``) and against a real bucket, switched by ``CUSTOMER360_LAKE`` alone, so no
asset or sensor ever branches on the backend. CLIs and tests go through ``open_lake`` so they exercise
exactly the construction path production uses.

Why a location is checked, never guessed: a mistyped ``CUSTOMER360_LAKE`` (a path typo, ``s3:/bucket``,
``S3://bucket``) used to become a fresh empty local folder, and a replay over that empty lake emptied the
warehouse. So a location is either ``s3://<bucket>[/<prefix>]`` (lower-case scheme, a valid bucket name) or
a local folder that already exists; anything else is refused with what was expected. Only an explicit
``customer360 init`` (``LakeResource.create``) or the demo creates a local lake folder.
"""

from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path

import dagster as dg
from pydantic import Field

from customer360 import settings
from customer360.lake.local import LocalLakeStore
from customer360.lake.s3 import S3LakeStore, make_s3_client
from customer360.lake.store import LakeStore

DEFAULT_LOCAL_LAKE = settings.DEFAULT_LOCAL_LAKE
S3_SCHEME = "s3://"
EXPECTED_LOCATION = "an existing local folder or s3://<bucket>[/<prefix>]"
# A URI scheme ("s3:", "S3:", "gs:", "file:") at the start of a location; a local path never has one on POSIX.
_SCHEME = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*):")
# S3's bucket naming rules for new buckets: 3-63 characters, lower-case letters, digits, dots and hyphens,
# starting and ending with a letter or digit.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class LakeConfigError(ValueError):
    """The lake location names no usable lake; the message says what is wrong and what was expected."""


def parse_s3_location(location: str) -> tuple[str, str] | None:
    """``(bucket, prefix)`` for an ``s3://`` location; None for a local path; LakeConfigError for anything else.

    Anything that starts like a URI must be exactly ``s3://<bucket>[/<prefix>]``: ``S3://bucket``,
    ``s3:/bucket``, ``s3:bucket`` or ``gs://bucket`` would otherwise be taken for a relative folder
    named ``s3:`` (or ``S3:``) in the working directory.
    """
    scheme = _SCHEME.match(location)
    if scheme is None:
        return None
    if not location.startswith(S3_SCHEME):
        hint = (
            "the scheme is lower-case 's3' followed by '://'"
            if scheme["scheme"].lower() == "s3"
            else f"{scheme['scheme']!r} is not a supported scheme"
        )
        raise LakeConfigError(f"lake location {location!r} is malformed: {hint}; expected {EXPECTED_LOCATION}")
    bucket, _, prefix = location[len(S3_SCHEME) :].partition("/")
    if not _BUCKET.fullmatch(bucket):
        raise LakeConfigError(
            f"lake location {location!r} names no valid bucket ({bucket!r}): bucket names are 3-63 lower-case "
            f"letters, digits, dots or hyphens; expected {EXPECTED_LOCATION}"
        )
    prefix = prefix.rstrip("/")
    if prefix and any(segment in ("", ".", "..") for segment in prefix.split("/")):
        raise LakeConfigError(
            f"lake location {location!r} has an empty or relative segment in its prefix {prefix!r}; "
            f"expected {EXPECTED_LOCATION}"
        )
    return bucket, prefix


def missing_folder_error(root: Path, location: str) -> LakeConfigError:
    hint = " (for a bucket, write s3://<bucket>)" if location.lower().startswith("s3") else ""
    return LakeConfigError(
        f"lake folder {root} does not exist (lake location {location!r}){hint}: check CUSTOMER360_LAKE for a "
        "typo, or create the lake with `customer360 init`"
    )


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
        """The lake's store; LakeConfigError when the location is malformed or names no existing folder."""
        return self._store

    @property
    def is_s3(self) -> bool:
        return parse_s3_location(self.location) is not None

    def create(self) -> LakeStore:
        """Create a local lake folder (parents included) and return its store; ``customer360 init`` and the demo.

        Buckets are provisioned, never created here: for ``s3://`` this checks that the bucket exists and
        answers (a missing bucket, a refused connection or missing credentials raise botocore's errors).
        """
        if parse_s3_location(self.location) is None:
            Path(self.location).expanduser().mkdir(parents=True, exist_ok=True)
        store = self.store()
        if isinstance(store, S3LakeStore):
            store.client.head_bucket(Bucket=store.bucket)
        return store

    # Dagster resources are frozen pydantic models; cached_property is the sanctioned way to keep
    # derived state on one (its config ignores cached_property), and it means one boto3 client per
    # resource instance instead of one per call. Dagster builds a fresh instance per run.
    @cached_property
    def _store(self) -> LakeStore:
        s3 = parse_s3_location(self.location)
        if s3 is not None:
            # Our own client rather than dagster_aws's S3Resource: that one has no timeouts (see lake.s3).
            client = make_s3_client(self.endpoint_url, self.region_name)
            return S3LakeStore(client, *s3)
        root = Path(self.location).expanduser()
        if not root.is_dir():
            if root.exists():
                raise LakeConfigError(f"lake location {self.location!r} is not a folder; expected {EXPECTED_LOCATION}")
            raise missing_folder_error(root.absolute(), self.location)
        return LocalLakeStore(root)


def lake_resource_from_env(*, must_exist: bool = True) -> LakeResource:
    """The LakeResource the environment asks for, defaulting to the embedded folder lake.

    Relative folders are made absolute here, at definition load, because the webserver, daemon and
    run workers do not necessarily share a working directory. A malformed location, or (unless
    ``must_exist`` is False: ``customer360 init``, the demo) a local folder that does not exist, raises
    LakeConfigError here, so the code location fails to load with that message (``dagster dev`` shows it)
    instead of serving a lake that is not the one meant.
    """
    configured = settings.lake_location()
    location = configured or str(DEFAULT_LOCAL_LAKE)
    if parse_s3_location(location) is None:
        root = Path(location).expanduser().absolute()
        if must_exist and not root.is_dir():
            if configured is None:
                raise LakeConfigError(
                    f"the embedded lake folder {root} does not exist (CUSTOMER360_LAKE is not set): create it with "
                    "`customer360 init` or run the demo (`python3.11 dev.py demo`), or set CUSTOMER360_LAKE"
                )
            raise missing_folder_error(root, location)
        location = str(root)
    return LakeResource(
        location=location,
        # Not EnvVars: the location is checked and made absolute here, and endpoint and region each come from
        # the first of several variables (customer360.settings), which one EnvVar cannot express.
        endpoint_url=settings.s3_endpoint_url(),
        region_name=settings.aws_region(),
    )


def open_lake(location: str, endpoint_url: str | None = None, region_name: str | None = None) -> LakeStore:
    """A LakeStore for ``location`` (an existing folder or ``s3://bucket[/prefix]``), built like the resource's."""
    return LakeResource(location=location, endpoint_url=endpoint_url, region_name=region_name).store()


def init_lake(location: str, endpoint_url: str | None = None, region_name: str | None = None) -> LakeStore:
    """``open_lake`` after creating a local lake folder (``customer360 init``); see ``LakeResource.create``."""
    return LakeResource(location=location, endpoint_url=endpoint_url, region_name=region_name).create()
