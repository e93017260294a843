"""The lake in an S3 bucket (or any S3-compatible store: MinIO, moto, ...), through a boto3 client.

Why a thin class rather than using the client directly in zone code: it pins down the few S3
behaviours the pipeline depends on and that are easy to get subtly wrong at each call site, namely
paginating past 1,000 keys, keys relative to an optional bucket prefix, create-only writes via the
``If-None-Match: *`` conditional PUT (the archive's immutability), streaming reads that look like
ordinary binary files, and mapping S3's error codes onto the same exceptions the local backend raises.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from botocore.exceptions import ClientError

from customer360.lake.store import (
    LakeStoreBase,
    ObjectExistsError,
    ObjectInfo,
    guard_delete,
    guard_delete_prefix,
    guard_put,
    missing_object,
)

# boto3 clients are generated at runtime; there is no importable class to annotate with.
S3Client = Any

_PAGE_SIZE = 1000  # S3's maximum for both ListObjectsV2 and DeleteObjects
_READ_BUFFER = 1024 * 1024
_MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
# 412: the key exists. 409: another conditional write to the same key is in flight; it will win or
# fail on its own, and either way this writer did not create the object.
_CREATE_CONFLICT_CODES = frozenset({"PreconditionFailed", "ConditionalRequestConflict", "412", "409"})


class S3LakeStore(LakeStoreBase):
    """A LakeStore over ``s3://bucket[/prefix]``; keys are relative to the prefix."""

    def __init__(self, client: S3Client, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._base = f"{self.prefix}/" if self.prefix else ""

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
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(**params, PaginationConfig={"PageSize": _PAGE_SIZE}):
            for obj in page.get("Contents", ()):
                key = obj["Key"][len(self._base) :]
                if key.endswith("/") and not include_markers:
                    continue  # a console "Create folder" marker: a prefix, not an object (as locally)
                yield ObjectInfo(
                    key=key,
                    size=obj["Size"],
                    etag=_etag(obj.get("ETag")),
                    last_modified=_utc(obj.get("LastModified")),
                )

    def list_prefixes(self, prefix: str) -> list[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        found: list[str] = []
        for page in paginator.paginate(
            Bucket=self.bucket,
            Prefix=self._base + prefix,
            Delimiter="/",
            PaginationConfig={"PageSize": _PAGE_SIZE},
        ):
            found.extend(cp["Prefix"][len(self._base) :] for cp in page.get("CommonPrefixes", ()))
        return sorted(found)

    def head(self, key: str) -> ObjectInfo | None:
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
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._full(key))
        except ClientError as exc:
            if _code(exc) in _MISSING_CODES:
                raise missing_object(key) from exc
            raise
        # botocore's StreamingBody only has read(); a BufferedReader over it adds readinto, readline,
        # peek and iteration, so pyarrow, gzip, csv and pandas all treat it as a regular binary file.
        return io.BufferedReader(_StreamingBodyRaw(response["Body"]), buffer_size=_READ_BUFFER)

    def download(self, key: str, local_path: Path) -> None:
        local_path = Path(local_path)
        local_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # The transfer manager streams (ranged, in parallel for big objects) into a temp file it
            # renames into place, so a failed download never leaves a truncated file behind.
            self.client.download_file(self.bucket, self._full(key), str(local_path))
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
        try:
            self.client.put_object(**params)
        except ClientError as exc:
            if create_only and _code(exc) in _CREATE_CONFLICT_CODES:
                raise ObjectExistsError(key) from exc
            raise

    def _delete_batch(self, batch: list[dict[str, str]]) -> int:
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
    that the whole object arrived and that its checksum matches.
    """

    def __init__(self, body: Any) -> None:
        self._body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
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
