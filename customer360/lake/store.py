"""What every zone step needs from the lake, whichever backend holds it.

Why a protocol of our own instead of passing a boto3 client around: the embedded default is a plain
folder laid out exactly like the bucket, and both backends must behave identically (create-only writes
for the immutable archive, listing by prefix, streaming reads). Zone code talks to this protocol only.

Keys are always bucket-relative, '/'-separated, e.g. ``archive/customers/2024-01-01/crm.csv``.
"""

from __future__ import annotations

import enum
import errno
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Protocol

ARCHIVE_PREFIX = "archive/"
PRIVATE_FOLDER = ".customer360"
"""The local backend's own folder at the lake root (half-written files, snapshots, deletes in flight).

Outside every zone and refused as a key on both backends, so nothing upstream lands can ever be taken for
one of the lake's own temp files, and none of them is ever listed as an object."""
MAX_NAME_BYTES = 255
"""The longest path segment (UTF-8 bytes) a key may hold: a local filesystem's NAME_MAX. S3 would take
longer ones, but then the key would work on S3 only; every key the pipeline writes stays within it."""

# What a listing says an entry is. Only a local folder can hold anything but plain files; the gate
# refuses those with a reason and never opens them (a FIFO would block a reader forever).
REGULAR = "file"
SYMLINK = "symlink"
DIRECTORY = "directory"
FIFO = "fifo"
SOCKET = "socket"
DEVICE = "device"


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


class NotRegularObjectError(OSError):
    """The key names something that is not a plain file (a symlink, FIFO, socket, device or folder)."""

    def __init__(self, key: str, kind: str, detail: str = "") -> None:
        super().__init__(f"{key!r} is a {kind}, not a regular file{detail}")
        self.key = key
        self.kind = kind
        self.detail = detail

    def __reduce__(self) -> tuple[type[NotRegularObjectError], tuple[str, str, str]]:
        return (type(self), (self.key, self.kind, self.detail))


class ObjectChangedError(OSError):
    """The object changed while it was being read: the bytes read may be no version of it at all."""

    def __init__(self, key: str) -> None:
        super().__init__(f"{key!r} changed while it was being read (still being written?)")
        self.key = key

    def __reduce__(self) -> tuple[type[ObjectChangedError], tuple[str]]:
        return (type(self), (self.key,))


class DeleteOutcome(enum.Enum):
    """What a conditional delete of a raw object found."""

    DELETED = "deleted"  # the key held exactly the object named, and no longer does
    CHANGED = "changed"  # the key holds another object now: left in place for the next run
    MISSING = "missing"  # nothing under the key any more


def check_key(key: str) -> str:
    """Reject keys that only one backend could store, so both behave identically.

    S3 would accept ``a//b`` or ``../x`` as opaque strings, but the local folder cannot represent the
    first and would escape its root with the second; a backslash is a separator on some filesystems, and a
    segment longer than ``MAX_NAME_BYTES`` cannot be a file name. Refusing them on both backends keeps
    "works locally" meaning "works on S3". The local backend's private folder is no key either.

    Applied to every write. Reads and deletes accept any key a listing returned (``check_listed_key``),
    since upstream systems may land keys we never would.
    """
    if not key or key.startswith("/") or key.endswith("/") or "\\" in key:
        raise ValueError(f"invalid lake key {key!r}: must be a non-empty relative '/'-separated path")
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            raise ValueError(f"invalid lake key {key!r}: bad path segment {segment!r}")
        if len(segment.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
            raise ValueError(f"invalid lake key {key!r}: a segment is longer than {MAX_NAME_BYTES} bytes")
    return check_listed_key(key)


def check_listed_key(key: str) -> str:
    """The minimum any key must satisfy to name a file under a local lake's root: what a listing can return.

    A backslash, a control character or a name that is not UTF-8 is a valid (if odd) file name upstream
    may land; the gate must be able to read and move it. What is refused can never name a file inside
    the root: empty, absolute, ``.``/``..``/empty segments, NUL, and the lake's private folder.
    """
    segments = key.split("/")
    if not key or key.startswith("/") or "\x00" in key or any(s in ("", ".", "..") for s in segments):
        raise ValueError(f"invalid lake key {key!r}: must be a non-empty relative '/'-separated path")
    if segments[0] == PRIVATE_FOLDER:
        raise ValueError(f"invalid lake key {key!r}: {PRIVATE_FOLDER}/ is the lake's private folder")
    return key


def check_prefix(prefix: str) -> str:
    """Prefixes may end mid-name (like S3), but their complete segments name folders a listing can return."""
    if prefix:
        directory = prefix.rpartition("/")[0]
        if directory:
            check_listed_key(directory)
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
    kind: str = REGULAR  # anything else only in a local folder: see REGULAR, SYMLINK, FIFO, ...
    detail: str = ""  # for a symlink: where it points (never followed)


class LakeStoreBase:
    """What both backends derive the same way from their own ``open_read``."""

    def open_read(self, key: str) -> BinaryIO:
        raise NotImplementedError

    def read_bytes(self, key: str) -> bytes:
        with self.open_read(key) as f:
            return f.read()


class LakeStore(Protocol):
    """Bucket-like storage. Implementations: LocalLakeStore (folder) and S3LakeStore (boto3).

    What a backend can do beyond a bucket is declared here too, as operations every backend answers,
    so that backend policy stays in the backends and no caller probes a store with ``getattr``:

    - local files: ``local_path`` returns the file behind a key where the lake is a folder, else None.
      A method returning ``Path | None`` rather than a capability flag because the answer callers act on
      is the path itself (open it in place, compare inodes), and the optional type makes every caller
      handle the remote case: there is no flag that could say "yes" while the path is missing.
    - hard links: ``link_or_put`` publishes a scratch file under a key, a hard link where the backend can
      make one and an upload otherwise. Callers never ask whether linking is possible: the backend
      decides (and falls back to a copy across filesystems), so there is nothing to declare as a flag.
    """

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

    def read_tail(self, key: str, length: int) -> bytes:
        """The object's last ``length`` bytes (the whole object when it is shorter): one ranged GET on S3.

        What a file's trailer needs without fetching the file: a Parquet footer holds its schema and row
        count (``transfer.parquet_footer``). FileNotFoundError when the key holds no object.
        """
        ...

    def download(self, key: str, local_path: Path) -> None:
        """Stream the object into a local file (bounded memory)."""
        ...

    def local_path(self, key: str) -> Path | None:
        """The file behind ``key`` where the lake is a local folder (readers open it in place), else None.

        None on S3: the object has to be fetched (``download``, ``snapshot``) before a local reader can
        open it. Never a way to read raw/ in place: raw files are always snapshot (upstream may still
        be writing them).
        """
        ...

    def snapshot(self, key: str, local_path: Path) -> ObjectInfo:
        """Copy one version of the object into a new local file; returns the identity of exactly that version.

        What the gate reads: the returned ``etag`` is the one ``delete_if_unchanged`` is given, so only
        the bytes admitted are ever removed. Raises FileNotFoundError when the key is gone,
        NotRegularObjectError for anything but a plain file (never opened in a way that could block or
        follow a link), and ObjectChangedError when the object changed while it was copied.
        """
        ...

    def delete_if_unchanged(self, key: str, etag: str | None) -> DeleteOutcome:
        """Remove the object only if the key still holds the version ``etag`` names (as listed or snapshot)."""
        ...

    def scratch_dir(self) -> AbstractContextManager[Path]:
        """A private temp folder for snapshots, from which ``link_or_put`` can publish cheaply; removed on exit."""
        ...

    def link_or_put(self, key: str, local_path: Path, *, create_only: bool = False) -> None:
        """Publish a file of ``scratch_dir`` under ``key``: a hard link where the lake is a local folder.

        Only for files the lake owns (a snapshot nobody else holds open), never for an upstream file:
        the archive must never share an inode with something another process can still write.
        """
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
