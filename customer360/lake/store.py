"""What every zone step needs from the lake, whichever backend holds it.

Why a protocol of our own instead of passing a boto3 client around: the embedded default is a plain
folder laid out exactly like the bucket, and both backends must behave identically (create-only writes
for the immutable archive, listing by prefix, streaming reads). Zone code talks to this protocol only.

Keys are always bucket-relative, '/'-separated, e.g. ``archive/customers/2024-01-01/crm.csv``.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Protocol

ARCHIVE_PREFIX = "archive/"
TEMP_NAME_PREFIX = ".tmp-"
"""Names the local backend gives half-written files; never valid in a key, so never listed."""


class ObjectExistsError(Exception):
    """A create-only write found the key already present (the archive is immutable)."""

    def __init__(self, key: str) -> None:
        super().__init__(f"object already exists and is immutable: {key}")
        self.key = key


class ImmutableZoneError(PermissionError):
    """A delete or overwrite reached into the archive zone, which only ever grows.

    A PermissionError because that is what it is to the caller: the operation is forbidden no matter
    how often it is retried, unlike ObjectExistsError which a re-run treats as "already archived".
    """

    def __init__(self, key: str, operation: str) -> None:
        super().__init__(f"{operation} refused for {key!r}: the archive zone ({ARCHIVE_PREFIX}) is immutable")
        self.key = key
        self.operation = operation

    def __reduce__(self) -> tuple[type[ImmutableZoneError], tuple[str, str]]:
        # OSError pickles as cls(*args) with the formatted message; errors crossing process
        # boundaries (multiprocess executor) must come back with key and operation intact.
        return (type(self), (self.key, self.operation))


def missing_object(key: str) -> FileNotFoundError:
    """The error every backend raises for a key that holds no object (S3's NoSuchKey, a missing file)."""
    return FileNotFoundError(errno.ENOENT, "no such object in the lake", key)


def check_key(key: str) -> str:
    """Reject keys that only one backend could store, so both behave identically.

    S3 would accept ``a//b`` or ``../x`` as opaque strings, but the local folder cannot represent the
    first and would escape its root with the second; a ``.tmp-`` segment would be an object the local
    listing hides. Refusing them on both backends keeps "works locally" meaning "works on S3".

    Applied to every write, and by the local backend to every key it turns into a path. S3 reads and
    deletes accept any key a listing returned, since upstream systems may land keys we never would.
    """
    if not key or key.startswith("/") or key.endswith("/") or "\\" in key:
        raise ValueError(f"invalid lake key {key!r}: must be a non-empty relative '/'-separated path")
    for segment in key.split("/"):
        if segment in ("", ".", "..") or segment.startswith(TEMP_NAME_PREFIX):
            raise ValueError(f"invalid lake key {key!r}: bad path segment {segment!r}")
    return key


def check_prefix(prefix: str) -> str:
    """Prefixes may end mid-name (like S3), but their complete segments follow the key rules."""
    if prefix:
        directory = prefix.rpartition("/")[0]
        if directory:
            check_key(directory)
        elif prefix.startswith("/"):
            raise ValueError(f"invalid lake prefix {prefix!r}: must be relative")
    return prefix


def in_archive(key: str) -> bool:
    return key.startswith(ARCHIVE_PREFIX)


def guard_put(key: str, *, create_only: bool) -> None:
    """Archive objects may be created but never replaced: only create-only writes may touch it."""
    check_key(key)
    if in_archive(key) and not create_only:
        raise ImmutableZoneError(key, "put without create_only")


def guard_delete(key: str) -> None:
    # No check_key here: on S3, upstream systems may have landed keys this lake would never write,
    # and the pipeline must still be able to move them out of raw/. The local backend validates
    # every key it maps to a path anyway.
    if in_archive(key):
        raise ImmutableZoneError(key, "delete")


def guard_delete_prefix(prefix: str) -> None:
    """Refuse any prefix that could match an archive key, including ``""`` and ``"arch"``.

    Checked before anything is deleted, so a refused call removes nothing rather than everything up
    to the first archive key.
    """
    if in_archive(prefix) or ARCHIVE_PREFIX.startswith(prefix):
        raise ImmutableZoneError(prefix, "delete_prefix")


@dataclass(frozen=True)
class ObjectInfo:
    """What a listing knows about an object; ``etag`` changes whenever the content may have."""

    key: str
    size: int
    etag: str | None
    last_modified: datetime | None


class LakeStoreBase:
    """What both backends derive the same way from their own ``open_read``."""

    def open_read(self, key: str) -> BinaryIO:
        raise NotImplementedError

    def read_bytes(self, key: str) -> bytes:
        with self.open_read(key) as f:
            return f.read()


class LakeStore(Protocol):
    """Bucket-like storage. Implementations: LocalLakeStore (folder) and S3LakeStore (boto3)."""

    @property
    def uri(self) -> str:
        """Where the lake lives: a folder path or ``s3://bucket[/prefix]``."""
        ...

    def list(self, prefix: str, start_after: str | None = None) -> Iterator[ObjectInfo]:
        """Every object whose key starts with ``prefix``, in key order (paginated on S3)."""
        ...

    def list_prefixes(self, prefix: str) -> list[str]:
        """The immediate "sub-folders" of ``prefix`` (ending in '/'), like S3's CommonPrefixes."""
        ...

    def head(self, key: str) -> ObjectInfo | None:
        """The object's info, or None when it does not exist."""
        ...

    def open_read(self, key: str) -> BinaryIO:
        """A streaming, read-only binary file object. Callers close it."""
        ...

    def read_bytes(self, key: str) -> bytes: ...

    def download(self, key: str, local_path: Path) -> None:
        """Stream the object into a local file (bounded memory)."""
        ...

    def put_bytes(self, key: str, data: bytes, *, create_only: bool = False) -> None:
        """Write an object. ``create_only`` raises ObjectExistsError when the key exists."""
        ...

    def put_file(self, key: str, local_path: Path, *, create_only: bool = False) -> None:
        """Upload a local file (streamed). ``create_only`` as in put_bytes."""
        ...

    def delete(self, key: str) -> None:
        """Remove one object; removing a missing key is not an error."""
        ...

    def delete_prefix(self, prefix: str) -> int:
        """Remove every object under ``prefix``; returns how many were removed."""
        ...
