"""The lake in an S3 bucket (or any S3-compatible store: MinIO, moto, ...), through a boto3 client.

Why a thin class rather than using the client directly in zone code: it pins down the few S3
behaviours the pipeline depends on and that are easy to get subtly wrong at each call site, namely
paginating past 1,000 keys, keys relative to an optional bucket prefix, create-only writes via the
``If-None-Match: *`` conditional PUT (the archive's immutability), streaming reads that look like
ordinary binary files, and mapping S3's error codes onto the same exceptions the local backend raises.

Every request has a connect and a read timeout and a bounded number of attempts (``S3Settings``, from
environment variables): an endpoint that accepts connections and never answers fails a listing in about
a minute and a half with the defaults, not after six. Any failure to reach the endpoint, or an error the
pipeline does not handle itself, surfaces as ``LakeRequestError`` naming the operation, the
``s3://bucket/key`` and the endpoint, so a person knows what to check.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from s3transfer.exceptions import RetriesExceededError

from customer360.lake.store import (
    DeleteOutcome,
    LakeStoreBase,
    ObjectExistsError,
    ObjectInfo,
    guard_delete,
    guard_delete_prefix,
    guard_put,
    missing_object,
)
from customer360.settings import S3_CONNECT_TIMEOUT_ENV, S3_MAX_ATTEMPTS_ENV, S3_READ_TIMEOUT_ENV, env_number

# boto3 clients are generated at runtime; there is no importable class to annotate with.
S3Client = Any


@dataclass(frozen=True)
class S3Settings:
    """How long one S3 request may take and how often it is tried; each field has an environment variable.

    ``read_timeout`` bounds each wait for bytes on an open connection (not a whole transfer, so a large
    download is not cut short); ``max_attempts`` counts the first try, retried with botocore's "standard"
    mode (exponential backoff with jitter, on throttling, 5xx and connection errors).
    """

    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    max_attempts: int = 3

    @classmethod
    def from_env(cls) -> S3Settings:
        return cls(
            connect_timeout=env_number(S3_CONNECT_TIMEOUT_ENV, cls.connect_timeout),
            read_timeout=env_number(S3_READ_TIMEOUT_ENV, cls.read_timeout),
            max_attempts=max(1, int(env_number(S3_MAX_ATTEMPTS_ENV, cls.max_attempts))),
        )

    def config(self) -> Config:
        return Config(
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            retries={"total_max_attempts": self.max_attempts, "mode": "standard"},
        )


def make_s3_client(
    endpoint_url: str | None = None, region_name: str | None = None, settings: S3Settings | None = None
) -> S3Client:
    """A boto3 S3 client with the lake's timeouts and retries (credentials from the usual boto3 chain)."""
    settings = settings or S3Settings.from_env()
    session = boto3.session.Session()
    return session.client("s3", endpoint_url=endpoint_url, region_name=region_name, config=settings.config())


class LakeRequestError(OSError):
    """An S3 request failed in a way the pipeline does not handle itself: says what, where and which endpoint."""


_PAGE_SIZE = 1000  # S3's maximum for both ListObjectsV2 and DeleteObjects
_READ_BUFFER = 1024 * 1024
_MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
# 412: the key exists. 409: another conditional write to the same key is in flight; it will win or
# fail on its own, and either way this writer did not create the object.
_CREATE_CONFLICT_CODES = frozenset({"PreconditionFailed", "ConditionalRequestConflict", "412", "409"})
# A conditional delete whose If-Match no longer holds (or raced another conditional request).
_CHANGED_CODES = _CREATE_CONFLICT_CODES
_HINTS = {
    "NoSuchBucket": " (check the bucket name in CUSTOMER360_LAKE and the endpoint)",
    "AccessDenied": " (check the credentials and the bucket policy)",
    "InvalidAccessKeyId": " (check the AWS credentials)",
    "SignatureDoesNotMatch": " (check the AWS credentials)",
}


class S3LakeStore(LakeStoreBase):
    """A LakeStore over ``s3://bucket[/prefix]``; keys are relative to the prefix."""

    def __init__(self, client: S3Client, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._base = f"{self.prefix}/" if self.prefix else ""

    @property
    def endpoint(self) -> str:
        return str(getattr(self.client.meta, "endpoint_url", None) or "AWS")

    @contextlib.contextmanager
    def _request(self, operation: str, key: str = "") -> Iterator[None]:
        """Name the endpoint, bucket and key in any error this store does not turn into its own exceptions."""
        try:
            yield
        except ClientError as exc:
            code = _code(exc)
            message = exc.response.get("Error", {}).get("Message", "")
            raise LakeRequestError(
                f"S3 {operation} of s3://{self.bucket}/{self._full(key)} at {self.endpoint} failed: {code} {message}"
                f"{_HINTS.get(code, '')}"
            ) from exc
        except (BotoCoreError, RetriesExceededError) as exc:
            # Timeouts, refused or dropped connections, unknown endpoints, missing credentials.
            raise LakeRequestError(
                f"S3 {operation} of s3://{self.bucket}/{self._full(key)} at {self.endpoint} failed: {exc} "
                f"(connect timeout {self._timeouts()}; check the endpoint, the network and the credentials)"
            ) from exc

    def _timeouts(self) -> str:
        config = self.client.meta.config
        attempts = (config.retries or {}).get("total_max_attempts", "?")
        return f"{config.connect_timeout} s, read timeout {config.read_timeout} s, {attempts} attempt(s)"

    def __repr__(self) -> str:
        return f"S3LakeStore({self.uri!r})"

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    # -- reading ------------------------------------------------------------------------------------

    def list(self, prefix: str, start_after: str | None = None) -> Iterator[ObjectInfo]:
        return self._list(prefix, start_after)

    def _list(self, prefix: str, start_after: str | None, *, include_markers: bool = False) -> Iterator[ObjectInfo]:
        params: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self._base + prefix}
        if start_after is not None:
            params["StartAfter"] = self._base + start_after
        with self._request("list", prefix):
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(**params, PaginationConfig={"PageSize": _PAGE_SIZE}):
                for obj in page.get("Contents", ()):
                    key = obj["Key"][len(self._base) :]
                    if key.endswith("/") and not obj["Size"] and not include_markers:
                        # A console "Create folder" marker: a prefix, not an object (as locally). One that
                        # holds bytes is an object someone wrote, and is listed so the gate moves it out.
                        continue
                    yield ObjectInfo(
                        key=key,
                        size=obj["Size"],
                        etag=_etag(obj.get("ETag")),
                        last_modified=_utc(obj.get("LastModified")),
                    )

    def list_prefixes(self, prefix: str) -> list[str]:
        found: list[str] = []
        with self._request("list", prefix):
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(
                Bucket=self.bucket,
                Prefix=self._base + prefix,
                Delimiter="/",
                PaginationConfig={"PageSize": _PAGE_SIZE},
            ):
                found.extend(cp["Prefix"][len(self._base) :] for cp in page.get("CommonPrefixes", ()))
        return sorted(found)

    def head(self, key: str) -> ObjectInfo | None:
        with self._request("head", key):
            try:
                response = self.client.head_object(Bucket=self.bucket, Key=self._full(key))
            except ClientError as exc:
                if _code(exc) in _MISSING_CODES:
                    return None
                raise
        return ObjectInfo(
            key=key,
            size=response["ContentLength"],
            etag=_etag(response.get("ETag")),
            last_modified=_utc(response.get("LastModified")),
        )

    def open_read(self, key: str) -> BinaryIO:
        response = self._get(key)
        # botocore's StreamingBody only has read(); a BufferedReader over it adds readinto, readline,
        # peek and iteration, so pyarrow, gzip, csv and pandas all treat it as a regular binary file.
        return io.BufferedReader(_StreamingBodyRaw(response["Body"], self, key), buffer_size=_READ_BUFFER)

    def read_tail(self, key: str, length: int) -> bytes:
        if length <= 0:
            raise ValueError(f"read_tail of {key!r}: length must be positive, not {length}")
        with self._request("GET", key):
            try:
                # A suffix range: the last ``length`` bytes, or the whole object when it is shorter.
                response = self.client.get_object(Bucket=self.bucket, Key=self._full(key), Range=f"bytes=-{length}")
            except ClientError as exc:
                if _code(exc) in _MISSING_CODES:
                    raise missing_object(key) from exc
                if _code(exc) == "InvalidRange":  # an empty object has no byte to range over
                    return b""
                raise
            with contextlib.closing(response["Body"]) as body:
                return body.read()  # type: ignore[no-any-return]

    def download(self, key: str, local_path: Path) -> None:
        local_path = Path(local_path)
        local_path.parent.mkdir(parents=True, exist_ok=True)
        with self._request("download", key):
            try:
                # The transfer manager streams (ranged, in parallel for big objects) into a temp file it
                # renames into place, so a failed download never leaves a truncated file behind.
                self.client.download_file(self.bucket, self._full(key), str(local_path))
            except ClientError as exc:
                if _code(exc) in _MISSING_CODES:
                    raise missing_object(key) from exc
                raise

    def snapshot(self, key: str, local_path: Path) -> ObjectInfo:
        """One GET streamed into ``local_path``: the bytes of exactly the version its ETag names.

        Not the transfer manager: its parallel ranged GETs of a big object could each read a different
        version if upstream replaced the object meanwhile. One response is one version.
        """
        response = self._get(key)
        size = response["ContentLength"]
        with (
            io.BufferedReader(_StreamingBodyRaw(response["Body"], self, key), buffer_size=_READ_BUFFER) as body,
            open(local_path, "xb") as target,
        ):
            shutil.copyfileobj(body, target, _READ_BUFFER)
            written = target.tell()
        if written != size:
            raise LakeRequestError(
                f"S3 GET of s3://{self.bucket}/{self._full(key)} at {self.endpoint} returned {written} of {size} bytes"
            )
        return ObjectInfo(
            key=key, size=size, etag=_etag(response.get("ETag")), last_modified=_utc(response.get("LastModified"))
        )

    def delete_if_unchanged(self, key: str, etag: str | None) -> DeleteOutcome:
        """DeleteObject with ``If-Match: <etag>``: S3 itself refuses (412) if the key holds another version.

        AWS honours If-Match on DeleteObject for general purpose buckets (since 2025) and moto does; a
        store that ignores the header would delete whatever is there, so the key is also headed first and
        left alone if its ETag already differs, which leaves only the head-to-delete window on such stores.
        Two versions with the same bytes have the same ETag: deleting "the other one" removes no fact.
        """
        guard_delete(key)
        current = self.head(key)
        if current is None:
            return DeleteOutcome.MISSING
        if etag is None or current.etag != etag:
            return DeleteOutcome.CHANGED
        with self._request("conditional delete", key):
            try:
                self.client.delete_object(Bucket=self.bucket, Key=self._full(key), IfMatch=f'"{etag}"')
            except ClientError as exc:
                code = _code(exc)
                if code in _MISSING_CODES:
                    return DeleteOutcome.MISSING
                if code in _CHANGED_CODES:
                    return DeleteOutcome.CHANGED
                raise
        return DeleteOutcome.DELETED

    @contextlib.contextmanager
    def scratch_dir(self) -> Iterator[Path]:
        with tempfile.TemporaryDirectory(prefix="customer360-") as folder:
            yield Path(folder)

    def link_or_put(self, key: str, local_path: Path, *, create_only: bool = False) -> None:
        self.put_file(key, local_path, create_only=create_only)

    def local_path(self, key: str) -> None:
        """No object of a bucket is a local file: readers fetch it first."""
        return None

    def _get(self, key: str) -> dict[str, Any]:
        with self._request("GET", key):
            try:
                return self.client.get_object(Bucket=self.bucket, Key=self._full(key))  # type: ignore[no-any-return]
            except ClientError as exc:
                if _code(exc) in _MISSING_CODES:
                    raise missing_object(key) from exc
                raise

    # -- writing ------------------------------------------------------------------------------------

    def put_bytes(self, key: str, data: bytes, *, create_only: bool = False) -> None:
        guard_put(key, create_only=create_only)
        self._put(key, data, create_only=create_only)

    def put_file(self, key: str, local_path: Path, *, create_only: bool = False) -> None:
        guard_put(key, create_only=create_only)
        # A single streamed PUT (up to S3's 5 GB limit) rather than the multipart transfer manager:
        # one request is one conditional write, so If-None-Match covers the whole object.
        with Path(local_path).open("rb") as body:
            self._put(key, body, create_only=create_only)

    def delete(self, key: str) -> None:
        guard_delete(key)
        # S3 answers 204 for a missing key too, which is exactly the protocol's contract.
        with self._request("delete", key):
            self.client.delete_object(Bucket=self.bucket, Key=self._full(key))

    def delete_prefix(self, prefix: str) -> int:
        guard_delete_prefix(prefix)
        deleted = 0
        batch: list[dict[str, str]] = []
        # Markers included: left behind, they would keep the emptied "folder" in list_prefixes.
        for info in self._list(prefix, None, include_markers=True):
            batch.append({"Key": self._full(info.key)})
            if len(batch) == _PAGE_SIZE:
                deleted += self._delete_batch(batch)
                batch = []
        if batch:
            deleted += self._delete_batch(batch)
        return deleted

    # -- internals ----------------------------------------------------------------------------------

    def _full(self, key: str) -> str:
        # Not validated here: writes were checked by guard_put, and reads must reach any key a
        # listing can return, including ones landed by other tools.
        return self._base + key

    def _put(self, key: str, body: bytes | BinaryIO, *, create_only: bool) -> None:
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": self._full(key), "Body": body}
        if create_only:
            params["IfNoneMatch"] = "*"
        with self._request("PUT", key):
            try:
                self.client.put_object(**params)
            except ClientError as exc:
                if create_only and _code(exc) in _CREATE_CONFLICT_CODES:
                    raise ObjectExistsError(key) from exc
                raise

    def _delete_batch(self, batch: list[dict[str, str]]) -> int:
        with self._request("batch delete", batch[0]["Key"][len(self._base) :]):
            response = self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
        # DeleteObjects reports per-key failures in a 200 response; silently counting them as
        # deleted would leave stale clean-zone files behind while claiming success.
        errors = response.get("Errors") or []
        if errors:
            first = errors[0]
            raise OSError(
                f"could not delete {len(errors)} object(s) from {self.uri}, first "
                f"{first.get('Key')!r}: {first.get('Code')} {first.get('Message')}"
            )
        return len(batch)


class _StreamingBodyRaw(io.RawIOBase):
    """Raw-IO face of a botocore StreamingBody, so io.BufferedReader can wrap it.

    Going through ``body.read`` (rather than the underlying urllib3 stream) keeps botocore's checks
    that the whole object arrived and that its checksum matches. A stalled stream fails after the read
    timeout with the store's endpoint and key in the error.
    """

    def __init__(self, body: Any, store: S3LakeStore, key: str) -> None:
        self._body = body
        self._store = store
        self._key = key

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        with self._store._request("GET (reading the body)", self._key):
            data = self._body.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        return n

    def close(self) -> None:
        if not self.closed:
            # Releases the HTTP connection even when the caller stops reading early.
            self._body.close()
        super().close()


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _utc(value: datetime | None) -> datetime | None:
    # botocore parses timestamps with dateutil's tzlocal()/tzutc(); normalise to datetime.UTC like the
    # local backend so isoformat() and serialised metadata read the same whichever lake produced them.
    return value.astimezone(UTC) if value is not None else None


def _etag(raw: str | None) -> str | None:
    return raw.strip('"') if raw else None
