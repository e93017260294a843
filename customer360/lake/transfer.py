"""Moving bytes between the lake and local scratch files, with the checksums that prove a copy.

Every step reads and writes through local files (streamed, never whole in memory): Arrow's readers and
DuckDB want seekable local files, and the gate needs the bytes twice (validate, then copy) without
fetching them twice from S3. A local-folder lake serves its own files directly, without a copy.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from customer360.lake.store import LakeStore

CHUNK = 8 << 20



def parquet_keys(store: LakeStore, prefix: str) -> list[str]:
    """The Parquet objects under ``prefix`` (a zone partition), skipping anything else kept beside them."""
    return [o.key for o in store.list(prefix) if o.key.endswith(".parquet")]


@dataclass(frozen=True)
class LocalCopy:
    path: Path
    size: int
    sha256: str
    md5: str | None  # only where it proves something: S3's ETag of a single PUT is the MD5


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


def local_path_of(store: LakeStore, key: str) -> Path | None:
    """The file behind a key when the lake is a local folder (no copy needed), else None."""
    resolve = getattr(store, "local_path", None)
    return resolve(key) if callable(resolve) else None


@contextmanager
def scratch_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="customer360-") as folder:
        yield Path(folder)


def fetch(store: LakeStore, key: str, folder: Path) -> LocalCopy:
    """A local, checksummed copy of one object (the object itself on a local lake).

    MD5 is computed only for a remote lake, where it is what an S3 ETag can be compared with; a local
    file pays for SHA-256 alone (MD5 costs twice as much per byte).
    """
    remote = local_path_of(store, key) is None
    path = _local(store, key, folder)
    size, sha, md5 = checksums(path, md5=remote)
    return LocalCopy(path, size, sha, md5)


def fetch_many(store: LakeStore, keys: list[str], folder: Path) -> list[Path]:
    """Local paths for objects, without checksums (readers of trusted zones)."""
    return [_local(store, key, folder) for key in keys]


def _local(store: LakeStore, key: str, folder: Path) -> Path:
    """The object's own file on a local lake, else a download into ``folder``."""
    path = local_path_of(store, key)
    if path is None:
        path = folder / key.replace("/", "__")
        store.download(key, path)
    return path
