"""The gate's clean and quarantine files of an arrival, written while it judges the file, for clean to move.

Why: the gate parses and types every row of a raw file to judge it (row counts per rule), and clean then
parsed and typed the same archived bytes again and wrote them to Parquet, alone on one core after the
gate was done. So the gate, while it judges a file, also builds its clean rows and its quarantined rows
and hands them to a writer thread that writes the very Parquet files clean would write
(``processing.clean_files``), beside the parse and typing rather than after them; when it accepts the
file it publishes them under the arrival's ledger entry id, and clean moves them into the lake (a hard
link on a local lake) instead of fetching, parsing, typing and writing the archive object.

The files carry the arrival's lineage (``_source_file`` on every row, the archive key and ledger entry in
the footer), so the gate asks, before it reads the file, where an accepted arrival of these bytes will
be archived (``steps.gate``); a race with another gate run can make that guess wrong, and clean then
sees it.

Why it stays correct whatever happens:
- the folder is named after the ledger entry id, which is derived from the raw key, content, ETag and
  time of the arrival; its ``meta.json`` records the archive key, row count, contract version, partition
  day and ``PARSE_VERSION`` (bumped whenever the readers' or the evaluation's output changes), and clean
  uses the files only when every one of them matches its ledger entry and contract: otherwise it parses
  the archive, as it does when nothing is published (another machine, a replay, a crash, an old entry);
- a parse is published by renaming a complete folder (atomic), and consumed by renaming it to a name of
  the consumer's own first (atomic: one consumer wins, any other parses the archive itself);
- a crash leaves only folders whose names say they are unfinished or claimed; they, and parses nobody
  consumed, are removed once older than ``MAX_AGE_SECONDS``; a write that fails (a full disk) ends the
  keeping, never the gate, and nothing is published when the disk is short of space;
- a file the gate is about to reject keeps nothing: once a file's bad rows pass its contract's tolerated
  share (after ``ABANDON_AFTER_ROWS`` rows), the gate stops building clean rows for it and only counts,
  as it did before, so a hostile file costs no more than counting; should the file still be accepted,
  clean parses the archive.

The folder is machine-local (``CUSTOMER360_PARSED_DIR``, default ``<tmp>/customer360-parsed``): where
the gate and clean run on different machines, clean parses, exactly as before.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from types import TracebackType

from customer360 import settings
from customer360.contracts import Dataset
from customer360.processing.clean_files import Arrival, CleanFileWriter
from customer360.processing.standardize import BatchResult, FileStats

PARSE_VERSION = "3"  # 1: string batches; 2: typed rows as Arrow IPC; 3: the clean and quarantine Parquet files
ABANDON_AFTER_ROWS = 50_000
MAX_AGE_SECONDS = 24 * 3600
FREE_SPACE_FACTOR = 4  # publish only when the disk keeps this many times the parse's size free
WRITE_AHEAD_BATCHES = 2  # evaluated batches waiting for the writer thread: memory stays bounded by batches
_UNFINISHED = ".writing-"
_CLAIMED = ".claimed-"
_META = "meta.json"
_DONE = None  # tells the writer thread that no batch follows


def parsed_root() -> Path:
    return settings.parsed_dir()


def address(entry_id: str) -> str:
    return f"{entry_id}.v{PARSE_VERSION}"


class ParseTee:
    """Writes the evaluated batches of one arrival to its clean and quarantine files, on a thread of its own;
    ``publish`` or discard.

    Used as a context manager: leaving it without ``publish`` removes what was written. ``active`` says
    whether it still wants clean rows (the gate evaluates for counts only once it is False). The batches
    must carry ``arrival.archive_key`` as their ``_source_file`` (the gate's evaluator is given it).
    """

    def __init__(self, dataset: Dataset, arrival: Arrival, *, partition_date: str) -> None:
        self.dataset = dataset
        self.arrival = arrival
        self.partition_date = partition_date
        self.root = parsed_root()
        self.folder: Path | None = None
        self.stats = FileStats()  # what clean reports of the file, as clean would count it
        self.rescued_columns: tuple[str, ...] = ()  # the evaluator's, set once the file is evaluated
        self._writer: CleanFileWriter | None = None
        self._queue: queue.Queue[BatchResult | None] = queue.Queue(WRITE_AHEAD_BATCHES)
        self._thread: threading.Thread | None = None
        self._failed: BaseException | None = None

    @property
    def active(self) -> bool:
        return self.folder is not None and self._failed is None

    @property
    def source_file(self) -> str:
        return self.arrival.archive_key

    def __enter__(self) -> ParseTee:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self.folder = Path(tempfile.mkdtemp(prefix=_UNFINISHED, dir=self.root))
            self._writer = CleanFileWriter(self.folder, self.dataset, self.arrival)
        except OSError:
            self._discard()  # no place to keep it: clean will parse
            return self
        self._thread = threading.Thread(target=self._write_all, name="parse-tee", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._discard()

    def keep(self, result: BatchResult) -> None:
        """Keep one evaluated batch (in file order); a batch evaluated for counts only ends the keeping."""
        if not self.active or result.clean is None or result.quarantine is None:
            self._discard()
            return
        self.stats.add(result)
        rows, bad = self.stats.rows, self.stats.quarantined_rows
        if rows >= ABANDON_AFTER_ROWS and bad > self.dataset.max_bad_row_share * rows:
            self._discard()  # on its way to rejection: keep counting only
            return
        self._queue.put(result)

    def _write_all(self) -> None:
        """The writer thread: Parquet encoding and compression release the GIL, so they run beside the parse."""
        assert self._writer is not None
        while (result := self._queue.get()) is not _DONE:
            if self._failed is None:
                try:
                    self._writer.write(result)
                except Exception as error:  # noqa: BLE001 - a full disk: give up keeping, never fail the gate
                    self._failed = error
        try:
            self._writer.close()
        except Exception as error:  # noqa: BLE001
            self._failed = self._failed or error

    def _finish_writing(self) -> None:
        if self._thread is not None:
            self._queue.put(_DONE)
            self._thread.join()
            self._thread = None

    def _discard(self) -> None:
        self._finish_writing()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    def publish(self) -> None:
        """Make the files of the arrival just judged (and accepted) available to clean."""
        self._finish_writing()
        if not self.active:
            self._discard()
            return
        assert self.folder is not None and self._writer is not None
        _remove_stale(self.root)
        try:
            written = sum(p.stat().st_size for p in self.folder.iterdir())
            if shutil.disk_usage(self.root).free < FREE_SPACE_FACTOR * written:
                self._discard()
                return
            self.stats.rescued_columns = self.rescued_columns
            meta = {
                "version": PARSE_VERSION,
                "entry_id": self.arrival.entry_id,
                "archive_key": self.arrival.archive_key,
                "rows": self.stats.rows,
                "contract_version": self.dataset.version,
                "partition_date": self.partition_date,
                "quarantine": self._writer.has_quarantine,
                "stats": asdict(self.stats),
            }
            (self.folder / _META).write_text(json.dumps(meta))
            os.rename(self.folder, self.root / address(self.arrival.entry_id))
            self.folder = None
        except (OSError, TypeError, ValueError):
            self._discard()  # already published by another run (the same arrival), no space, a sample JSON cannot hold


class ClaimedParse:
    """A published parse this process took for itself; removed when the context is left."""

    def __init__(self, folder: Path, meta: dict[str, object]) -> None:
        self.folder = folder
        self.clean_path = folder / "clean.parquet"
        self.quarantine_path = (folder / "quarantine.parquet") if meta["quarantine"] else None
        stats = dict(meta["stats"])  # type: ignore[call-overload]
        self.stats = FileStats(**{**stats, "rescued_columns": tuple(stats["rescued_columns"])})

    def __enter__(self) -> ClaimedParse:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def claim(arrival: Arrival, rows: int | None, *, contract_version: str, partition_date: str) -> ClaimedParse | None:
    """The gate's files of this arrival, now this process's alone; None when there are none (parse then)."""
    root = parsed_root()
    mine = root / f"{_CLAIMED}{uuid.uuid4().hex}"
    try:
        os.rename(root / address(arrival.entry_id), mine)
    except OSError:
        return None
    try:
        meta = json.loads((mine / _META).read_text())
    except (OSError, ValueError):
        meta = {}
    expected = {
        "version": PARSE_VERSION,
        "entry_id": arrival.entry_id,
        "archive_key": arrival.archive_key,
        "rows": rows,
        "contract_version": contract_version,
        "partition_date": partition_date,
    }
    if any(meta.get(key) != value for key, value in expected.items()):
        shutil.rmtree(mine, ignore_errors=True)
        return None
    try:
        return ClaimedParse(mine, meta)
    except (KeyError, TypeError, ValueError):
        shutil.rmtree(mine, ignore_errors=True)
        return None


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
