"""Moving bytes between the lake and local scratch files, with the checksums that prove a copy.

Every step reads and writes through local files (streamed, never whole in memory): Arrow's readers and
DuckDB want seekable local files, and the gate needs the bytes twice (validate, then copy) without
fetching them twice from S3. A local-folder lake serves its trusted zones' files directly, without a
copy; raw files are always snapshot (``fetch``), since upstream may still be writing them. What only a
file's footer says (a Parquet file's schema and row count) is read from its end alone (``parquet_footer``).

Local file names are fixed or derived from a hash of the key, never the key itself: a key can be up to
1,024 bytes, a file name only 255.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pyarrow as pa
import pyarrow.parquet as pq

from customer360.lake.store import LakeStore, ObjectInfo

CHUNK = 8 << 20
_FOLLOW_WAIT_SECONDS = 0.005  # how long the hash of a growing copy waits for more bytes
# How much of a Parquet file's end one read fetches, hoping it holds the whole footer (Arrow's own first
# guess is 64 KiB too); a bigger footer costs one more read of exactly its size.
FOOTER_GUESS = 64 << 10
_PARQUET_MAGIC = b"PAR1"
_SUFFIX = re.compile(r"(\.[0-9A-Za-z]{1,10}){0,2}$")


def parquet_keys(store: LakeStore, prefix: str) -> list[str]:
    """The Parquet objects under ``prefix`` (a zone partition), skipping anything else kept beside them."""
    return [o.key for o in store.list(prefix) if o.key.endswith(".parquet")]


@dataclass(frozen=True)
class ParquetFooter:
    """What a Parquet file's footer says about it: its Arrow schema and how many rows it holds."""

    key: str
    schema: pa.Schema
    rows: int


def parquet_footer(store: LakeStore, key: str) -> ParquetFooter:
    """The schema and row count of a Parquet object, read from its footer alone (``store.read_tail``).

    A Parquet file ends with its metadata (schema, row groups, row counts), its 4-byte length and
    ``PAR1``; the metadata is self-contained, so Arrow reads it from those bytes alone. One ranged read
    for a footer under ``FOOTER_GUESS``, two for a bigger one; never the file's data.
    """
    tail = store.read_tail(key, FOOTER_GUESS)
    if len(tail) < 12 or tail[-4:] != _PARQUET_MAGIC:
        raise ValueError(f"{key!r} is not a Parquet file: it does not end with a Parquet footer")
    length = int.from_bytes(tail[-8:-4], "little") + 8
    if length > len(tail):
        tail = store.read_tail(key, length)
        if length > len(tail):
            raise ValueError(f"{key!r} is not a Parquet file: its footer claims {length} bytes of {len(tail)}")
    reader = pq.ParquetFile(pa.BufferReader(tail[-length:]))
    return ParquetFooter(key, reader.schema_arrow, reader.metadata.num_rows)


@dataclass(frozen=True)
class LocalCopy:
    path: Path
    size: int
    sha256: str
    md5: str | None  # only where it proves something: S3's ETag of a single PUT is the MD5
    source: ObjectInfo | None = None  # the version of the object these bytes are (its ETag and time)


def checksums(path: Path, *, md5: bool = True) -> tuple[int, str, str | None]:
    sha, size = hashlib.sha256(), 0
    md5_hash = hashlib.md5(usedforsecurity=False) if md5 else None
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            sha.update(chunk)
            if md5_hash is not None:
                md5_hash.update(chunk)
            size += len(chunk)
    return size, sha.hexdigest(), md5_hash.hexdigest() if md5_hash is not None else None


@contextmanager
def scratch_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="customer360-") as folder:
        yield Path(folder)


def fetch(store: LakeStore, key: str, folder: Path) -> LocalCopy:
    """A local, checksummed snapshot of one version of an object, and which version it is.

    Always a copy the pipeline owns (``store.snapshot``): on a local lake, in the lake's private folder on
    the same filesystem (``folder`` should come from ``store.scratch_dir()``), so archiving it is a hard
    link of a file nobody else can write. The checksums are of that copy: what is validated, archived and
    ledgered are the same bytes. MD5 is computed only for a remote lake, where it is what an S3 ETag can
    be compared with; a local file pays for SHA-256 alone (MD5 costs twice as much per byte).
    """
    remote = store.local_path(key) is None
    path = folder / f"snapshot-{_key_hash(key)}"
    if remote:
        source = store.snapshot(key, path)
        size, sha, md5 = checksums(path, md5=True)
        return LocalCopy(path, size, sha, md5, source)
    # A local copy is written front to back: it is hashed as it grows, on a second core, not after.
    follower = _GrowingFileHash(path)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sha256") as pool:
        hashed = pool.submit(follower.run)
        try:
            source = store.snapshot(key, path)
        finally:
            follower.copied.set()
        size, sha = hashed.result()
    _write_back_behind(path)
    return LocalCopy(path, size, sha, None, source)


def _write_back_behind(path: Path) -> None:
    """Start putting the snapshot on disk now, on a thread of its own, while the gate validates it.

    Publishing it (``LocalLakeStore.link_file``) must fsync it first; a gigabyte copy still in the page
    cache then waits for the disk in one go (measured: 0.5-1 s idle per 2.4 GB on this machine's disk at
    the end of the gate). Flushed meanwhile, that fsync finds almost nothing left to write. A snapshot
    deleted before the flush ends (a rejected or duplicate file) only ends the flush.
    """

    def flush() -> None:
        with contextlib.suppress(OSError):
            descriptor = os.open(path, os.O_RDONLY)
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)

    threading.Thread(target=flush, name="snapshot-write-back", daemon=True).start()


class _GrowingFileHash:
    """The SHA-256 of a file another thread is still writing sequentially, read behind the writer.

    ``copied`` is set once the writer is done (or gave up); whatever the file holds then is read to its
    end. A read that finds no new bytes waits for the writer rather than spinning.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.copied = threading.Event()

    def run(self) -> tuple[int, str]:
        sha, size = hashlib.sha256(), 0
        while not self.path.exists():
            if self.copied.wait(_FOLLOW_WAIT_SECONDS) and not self.path.exists():
                return 0, sha.hexdigest()  # the copy failed before it began: the caller raises its error
        with self.path.open("rb") as handle:
            while True:
                done = self.copied.is_set()  # read before the read: an empty read after it means the end
                chunk = handle.read(CHUNK)
                if chunk:
                    sha.update(chunk)
                    size += len(chunk)
                elif done:
                    return size, sha.hexdigest()
                else:
                    self.copied.wait(_FOLLOW_WAIT_SECONDS)


def fetch_many(store: LakeStore, keys: list[str], folder: Path) -> list[Path]:
    """Local paths for objects, without checksums (readers of trusted zones)."""
    return [_local(store, key, folder) for key in keys]


def _local(store: LakeStore, key: str, folder: Path) -> Path:
    """The object's own file on a local lake, else a download into ``folder``."""
    path = store.local_path(key)
    if path is None:
        path = folder / local_name(key)
        store.download(key, path)
    return path


def local_name(key: str) -> str:
    """A bounded local file name for ``key``: unique per key, keeping its extension for readers that look."""
    suffix = _SUFFIX.search(PurePosixPath(key).name)
    return f"{_key_hash(key)}{suffix.group(0) if suffix else ''}"


def _key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:24]
