"""The gate's parse of a file, kept on this machine for clean, so that an archived file is parsed once.

Why: the gate parses every raw file to judge it (row counts per rule), and clean then parsed the same
archived bytes again. For JSON Lines the parse is most of the work (a 1M-row file: ~3 s of CPU per
parse, against ~0.1 s to write and read back the parsed batches), so parsing twice cost more than
typing. The gate now tees the string batches it reads (and each row's physical line) into Arrow IPC
files; when it accepts the file it publishes them under the file's content address, and clean
consumes them instead of fetching and parsing the archive object.

Why it stays correct whatever happens:
- the address is the sha256 of the bytes, the declared format and ``PARSE_VERSION`` (bumped whenever
  the readers' output changes), and a parse is a pure function of those: any copy is the right one,
  whichever run, day or ledger entry wrote it, and clean checks its row count against the ledger's;
- a parse is published by renaming a complete folder (atomic), and consumed by renaming it to a name of
  the consumer's own first (atomic: one consumer wins, any other parses the archive itself, as it does
  when nothing is published: another machine, a replay, a crash, an old entry);
- a crash leaves only folders whose names say they are unfinished or claimed; they, and parses nobody
  consumed, are removed once older than ``MAX_AGE_SECONDS``; nothing is published when the disk is
  short of space.

The folder is machine-local (``CUSTOMER360_PARSED_DIR``, default ``<tmp>/customer360-parsed``): where
the gate and clean run on different machines, clean parses, exactly as before.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType

import pyarrow as pa

from customer360 import settings
from customer360.processing.formats import FileFormat, StringBatches

PARSE_VERSION = "1"
MAX_AGE_SECONDS = 24 * 3600
FREE_SPACE_FACTOR = 4  # publish only when the disk keeps this many times the parse's size free
_UNFINISHED = ".writing-"
_CLAIMED = ".claimed-"
_META = "meta.json"


def parsed_root() -> Path:
    return settings.parsed_dir()


def address(sha256: str, file_format: FileFormat) -> str:
    return f"{sha256}{file_format.extension}.v{PARSE_VERSION}"


class ParseTee:
    """Writes the batches a reader yields, as they pass, into an unfinished folder; ``publish`` or discard.

    Used as a context manager: leaving it without ``publish`` removes what was written.
    """

    def __init__(self, sha256: str, file_format: FileFormat) -> None:
        self.sha256 = sha256
        self.format = file_format
        self.root = parsed_root()
        self.folder: Path | None = None
        self.batches = 0
        self.rows = 0
        self.bytes = 0

    def __enter__(self) -> ParseTee:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self.folder = Path(tempfile.mkdtemp(prefix=_UNFINISHED, dir=self.root))
        except OSError:
            self.folder = None  # no place to keep it: clean will parse
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    def tee(self, batches: Iterable[tuple[pa.RecordBatch, pa.Array]]) -> Iterator[tuple[pa.RecordBatch, pa.Array]]:
        for batch, lines in batches:
            self._keep(batch, lines)
            yield batch, lines

    def _keep(self, batch: pa.RecordBatch, lines: pa.Array) -> None:
        if self.folder is None:
            return
        # The lines go first, by position: any name could also be a JSON key of the file.
        kept = pa.RecordBatch.from_arrays([lines, *batch.columns], names=["", *batch.schema.names])
        path = self.folder / f"{self.batches:08d}.arrow"
        try:
            with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, kept.schema) as writer:
                writer.write_batch(kept)
            self.bytes += path.stat().st_size
        except OSError:
            shutil.rmtree(self.folder, ignore_errors=True)  # a full disk: give up keeping, never fail the gate
            self.folder = None
            return
        self.batches += 1
        self.rows += batch.num_rows

    def publish(self, path: Path) -> None:
        """Make the parse of the file at ``path`` (the copy just read) available to clean."""
        if self.folder is None:
            return
        _remove_stale(self.root)
        try:
            if shutil.disk_usage(self.root).free < FREE_SPACE_FACTOR * self.bytes:
                return
            # The header as clean's reader gives it (for JSON Lines: the first object's keys).
            header = StringBatches(path, self.format).read_header()
            meta = {"header": header, "batches": self.batches, "rows": self.rows, "version": PARSE_VERSION}
            (self.folder / _META).write_text(json.dumps(meta))
            os.rename(self.folder, self.root / address(self.sha256, self.format))
            self.folder = None
        except OSError:
            pass  # already published by another run (same bytes, same parse), or no space: __exit__ cleans


class ClaimedParse:
    """A published parse this process took for itself; removed when the context is left."""

    def __init__(self, folder: Path, header: list[str], batches: int) -> None:
        self.folder = folder
        self.header = header
        self.count = batches

    def __enter__(self) -> ClaimedParse:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def batches(self) -> Iterator[tuple[pa.RecordBatch, pa.Array]]:
        for index in range(self.count):
            kept = pa.ipc.open_file(pa.memory_map(str(self.folder / f"{index:08d}.arrow"))).get_batch(0)
            yield kept.select(list(range(1, kept.num_columns))), kept.column(0)


def claim(sha256: str, file_format: FileFormat, rows: int | None) -> ClaimedParse | None:
    """The published parse of these bytes, now this process's alone; None when there is none (parse then)."""
    root = parsed_root()
    folder = root / address(sha256, file_format)
    mine = root / f"{_CLAIMED}{uuid.uuid4().hex}"
    try:
        os.rename(folder, mine)
    except OSError:
        return None
    try:
        meta = json.loads((mine / _META).read_text())
    except (OSError, ValueError):
        meta = {}
    if meta.get("version") != PARSE_VERSION or meta.get("rows") != rows:
        shutil.rmtree(mine, ignore_errors=True)
        return None
    return ClaimedParse(mine, list(meta["header"]), int(meta["batches"]))


def _remove_stale(root: Path) -> None:
    """Unfinished, claimed or unconsumed parses older than ``MAX_AGE_SECONDS`` (a crash, a file never cleaned)."""
    cutoff = time.time() - MAX_AGE_SECONDS
    try:
        entries = list(root.iterdir())
    except OSError:
        return
    for entry in entries:
        try:
            if entry.stat().st_mtime < cutoff:
                shutil.rmtree(entry, ignore_errors=True)
        except OSError:
            continue
