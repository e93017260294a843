"""The lake as a plain local folder, laid out exactly like the bucket.

Why this exists: the embedded default (demo, tests, a laptop) needs no S3 at all, yet zone code must
not be able to tell the difference. So this backend reproduces the S3 semantics zone code relies on:
listings in key order with prefixes that may end mid-name, "folders" that exist only while they hold
objects, objects that appear whole or not at all, and create-only writes that lose a race cleanly.
"""

from __future__ import annotations

import os
import shutil
import stat
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from customer360.lake.store import (
    TEMP_NAME_PREFIX,
    LakeStoreBase,
    ObjectExistsError,
    ObjectInfo,
    check_key,
    check_prefix,
    guard_delete,
    guard_delete_prefix,
    guard_put,
    missing_object,
)

_COPY_CHUNK = 1024 * 1024
# A concurrent delete prunes empty folders; if it prunes the one we just created before our temp
# file lands in it, creating the folder again is all that is needed. Bounded so a real error surfaces.
_MKDIR_ATTEMPTS = 5


class LocalLakeStore(LakeStoreBase):
    """A LakeStore over a folder: key ``a/b/c.csv`` is the file ``root/a/b/c.csv``."""

    def __init__(self, root: Path) -> None:
        # Absolute so that a later chdir (Dagster subprocesses, CLIs) cannot move the lake.
        self.root = Path(root).absolute()

    def __repr__(self) -> str:
        return f"LocalLakeStore({str(self.root)!r})"

    @property
    def uri(self) -> str:
        return str(self.root)

    # -- reading ------------------------------------------------------------------------------------

    def list(self, prefix: str, start_after: str | None = None) -> Iterator[ObjectInfo]:
        check_prefix(prefix)
        return self._walk(self.root, "", prefix, start_after)

    def list_prefixes(self, prefix: str) -> list[str]:
        check_prefix(prefix)
        directory_key, _, name_start = prefix.rpartition("/")
        base_key = f"{directory_key}/" if directory_key else ""
        try:
            entries = list(os.scandir(self.root / directory_key))
        except (FileNotFoundError, NotADirectoryError):
            return []
        found = []
        for entry in entries:
            if not (entry.name.startswith(name_start) and entry.is_dir()):
                continue
            sub_key = f"{base_key}{entry.name}/"
            # S3 has no empty folders: a prefix exists only while an object lives under it, so a
            # folder holding nothing but an interrupted write's temp file must not show up.
            if next(self._walk(Path(entry.path), sub_key, sub_key, None), None) is not None:
                found.append(sub_key)
        return sorted(found)

    def head(self, key: str) -> ObjectInfo | None:
        try:
            st = self._path(key).stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        # A folder is a prefix, not an object.
        return _info(key, st) if stat.S_ISREG(st.st_mode) else None

    def open_read(self, key: str) -> BinaryIO:
        try:
            return self._path(key).open("rb")
        except (IsADirectoryError, NotADirectoryError):
            # A folder is a prefix, not an object: S3 answers NoSuchKey, so answer the same way.
            raise missing_object(key) from None

    def download(self, key: str, local_path: Path) -> None:
        local_path = Path(local_path)
        local_path.parent.mkdir(parents=True, exist_ok=True)
        with self.open_read(key) as src, local_path.open("wb") as dst:
            shutil.copyfileobj(src, dst, _COPY_CHUNK)

    # -- writing ------------------------------------------------------------------------------------

    def put_bytes(self, key: str, data: bytes, *, create_only: bool = False) -> None:
        guard_put(key, create_only=create_only)
        self._write_atomically(key, lambda f: f.write(data), create_only=create_only)

    def put_file(self, key: str, local_path: Path, *, create_only: bool = False) -> None:
        guard_put(key, create_only=create_only)
        with Path(local_path).open("rb") as src:
            self._write_atomically(key, lambda f: shutil.copyfileobj(src, f, _COPY_CHUNK), create_only=create_only)

    def link_file(self, key: str, source: Path, *, create_only: bool = False) -> None:
        """Publish a file already in this lake's filesystem under ``key`` without copying its bytes.

        The gate uses it to archive a raw file: a hard link is the same bytes by construction, costs
        nothing for a gigabyte file, and is create-only atomically (``os.link`` fails if the name exists).
        Raises OSError (EXDEV) when ``source`` lives on another filesystem; callers then copy.
        """
        guard_put(key, create_only=create_only)
        final = self._path(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        if create_only:
            try:
                os.link(source, final)
            except FileExistsError:
                raise ObjectExistsError(key) from None
            return
        tmp = final.with_name(f"{TEMP_NAME_PREFIX}{uuid.uuid4().hex}")
        os.link(source, tmp)
        os.replace(tmp, final)

    def delete(self, key: str) -> None:
        guard_delete(key)
        path = self._path(key)
        try:
            if not stat.S_ISREG(path.stat().st_mode):
                return  # a folder is a prefix, not an object: nothing to delete, as on S3
            path.unlink()
        except (FileNotFoundError, NotADirectoryError):
            return  # deleting a missing key is not an error
        self._prune_empty_parents(path.parent)

    def delete_prefix(self, prefix: str) -> int:
        guard_delete_prefix(prefix)
        # Materialise first: deleting while walking would prune folders the walk is about to enter.
        keys = [info.key for info in self.list(prefix)]
        for key in keys:
            self.delete(key)
        return len(keys)

    def local_path(self, key: str) -> Path:
        """The file behind ``key``: readers open it in place instead of copying it to scratch."""
        return self._path(key)

    # -- internals ----------------------------------------------------------------------------------

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    def _walk(self, directory: Path, directory_key: str, prefix: str, start_after: str | None) -> Iterator[ObjectInfo]:
        """Files under ``directory`` matching ``prefix`` and after ``start_after``, in S3 key order.

        Sorting each folder by ``name + "/"`` for sub-folders (and ``name`` for files) yields the
        global byte order of full keys without collecting them all first: ``a-c`` sorts before
        ``a/b`` because '-' < '/'. Python compares str by code point, which is UTF-8 byte order.
        Sub-folders that cannot hold a match are never entered, so listing ``raw/customers/`` does
        not scan the archive.
        """
        try:
            with os.scandir(directory) as it:
                entries = [(e.name + "/" if e.is_dir() else e.name, e) for e in it]
        except (FileNotFoundError, NotADirectoryError):
            return
        entries.sort(key=lambda pair: pair[0])
        for sort_name, entry in entries:
            key = directory_key + sort_name
            if sort_name.endswith("/"):
                if not (key.startswith(prefix) or prefix.startswith(key)):
                    continue
                # Every key in this folder starts with `key`; if start_after is past `key` without
                # being inside it, it is past all of them.
                if start_after is not None and start_after >= key and not start_after.startswith(key):
                    continue
                yield from self._walk(Path(entry.path), key, prefix, start_after)
                continue
            if entry.name.startswith(TEMP_NAME_PREFIX) or not key.startswith(prefix):
                continue
            if start_after is not None and key <= start_after:
                continue
            try:
                st = entry.stat()
            except FileNotFoundError:
                continue  # deleted since the folder was read; S3 listings race the same way
            yield _info(key, st)

    def _write_atomically(self, key: str, write: Callable[[BinaryIO], object], *, create_only: bool) -> None:
        """Write to a temp file beside the target, fsync, then publish it under its final name.

        Readers and listings therefore only ever see complete objects: a crash leaves at most a
        ``.tmp-`` file, which listings skip. Publishing with ``os.link`` fails if the name exists,
        atomically, which is what makes concurrent create-only writers safe (exactly one wins); plain
        writes use ``os.replace``, which atomically swaps the old content for the new.
        The folder itself is not fsynced: if the new name is lost in a crash the object is simply
        absent, and the next run writes it again.
        """
        final = self._path(key)
        tmp = self._open_temp(final.parent)
        tmp_path = Path(tmp.name)
        try:
            with tmp:
                write(tmp)
                tmp.flush()
                os.fsync(tmp.fileno())
            if create_only:
                try:
                    os.link(tmp_path, final)
                except FileExistsError:
                    raise ObjectExistsError(key) from None
            else:
                os.replace(tmp_path, final)
        finally:
            # After os.replace the temp name is already gone; after os.link (or a failure) it is not.
            tmp_path.unlink(missing_ok=True)

    def _open_temp(self, directory: Path) -> BinaryIO:
        for attempt in range(_MKDIR_ATTEMPTS):
            directory.mkdir(parents=True, exist_ok=True)
            try:
                # "x": never clobber another writer's temp file, however unlikely the uuid collision.
                return (directory / f"{TEMP_NAME_PREFIX}{uuid.uuid4().hex}").open("xb")
            except FileNotFoundError:
                if attempt == _MKDIR_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    def _prune_empty_parents(self, directory: Path) -> None:
        """Remove folders emptied by a delete, so listings of them disappear as they do on S3."""
        while directory != self.root and self.root in directory.parents:
            try:
                directory.rmdir()
            except OSError:
                return  # not empty (or already gone): everything above it is in use too
            directory = directory.parent


def _info(key: str, st: os.stat_result) -> ObjectInfo:
    return ObjectInfo(
        key=key,
        size=st.st_size,
        # Cheap identity without hashing the content. Every write publishes a brand-new temp file, so
        # the inode changes even when size and (coarse-grained) mtime happen to repeat.
        etag=f"{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}",
        last_modified=datetime.fromtimestamp(st.st_mtime_ns / 1e9, tz=UTC),
    )
