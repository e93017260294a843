"""What every zone step needs from the lake, whichever backend holds it.

Why a protocol of our own instead of passing a boto3 client around: the embedded default is a plain
folder laid out exactly like the bucket, and both backends must behave identically (create-only writes
for the immutable archive, listing by prefix, streaming reads). Zone code talks to this protocol only.

Keys are always bucket-relative, '/'-separated, e.g. ``archive/customers/2024-01-01/crm.csv``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Protocol


class ObjectExistsError(Exception):
    """A create-only write found the key already present (the archive is immutable)."""

    def __init__(self, key: str) -> None:
        super().__init__(f"object already exists and is immutable: {key}")
        self.key = key


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str | None
    last_modified: datetime | None


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
