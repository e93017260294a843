"""The gate's evaluation of a file, kept on this machine for clean, so that an archived file is typed once.

Why: the gate parses and types every raw file to judge it (row counts per rule), and clean then parsed
and typed the same archived bytes again. For JSON Lines the parse is most of the work, and for every
format typing is the rest: doing both twice was about a third of the CPU of gate + clean. So the gate,
while it judges a file, also builds its clean rows and its quarantined rows (the tables clean writes)
and keeps them, batch by batch, in Arrow IPC files next to the per-batch counts; when it accepts the
file it publishes them under the file's content address, and clean writes them to Parquet instead of
fetching, parsing and typing the archive object. The one column that depends on where the file is
archived, ``_source_file``, is set by clean (the gate evaluates before it knows the archive key).

Why it stays correct whatever happens:
- the address is the sha256 of the bytes, the declared format and ``PARSE_VERSION`` (bumped whenever
  the readers' or the evaluation's output changes), and the kept rows are a pure function of those and
  of the contract version and partition day, both recorded and checked by clean: any copy is the right
  one, whichever run or ledger entry wrote it, and clean checks its row count against the ledger's;
- a parse is published by renaming a complete folder (atomic), and consumed by renaming it to a name of
  the consumer's own first (atomic: one consumer wins, any other parses the archive itself, as it does
  when nothing is published: another machine, a replay, a crash, an old entry);
- a crash leaves only folders whose names say they are unfinished or claimed; they, and parses nobody
  consumed, are removed once older than ``MAX_AGE_SECONDS``; nothing is published when the disk is
  short of space;
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
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import pyarrow as pa

from customer360 import settings
from customer360.contracts.schemas import QUARANTINE_SCHEMA, SOURCE_FILE
from customer360.processing.formats import FileFormat
from customer360.processing.standardize import BatchResult

PARSE_VERSION = "2"  # 1: string batches; 2: typed clean + quarantine rows with per-batch counts
ABANDON_AFTER_ROWS = 50_000
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
    """Keeps the evaluated batches of one file as the gate produces them, in a folder; ``publish`` or discard.

    Used as a context manager: leaving it without ``publish`` removes what was written. ``active`` says
    whether it still wants clean rows (the gate evaluates for counts only once it is False).
    """

    def __init__(
        self, sha256: str, file_format: FileFormat, *, contract_version: str, partition_date: str, max_bad_share: float
    ) -> None:
        self.sha256 = sha256
        self.format = file_format
        self.contract_version = contract_version
        self.partition_date = partition_date
        self.max_bad_share = max_bad_share
        self.root = parsed_root()
        self.folder: Path | None = None
        self.results: list[dict[str, object]] = []
        self.rows = 0
        self.bad_rows = 0
        self.bytes = 0
        self.rescued_columns: tuple[str, ...] = ()  # the evaluator's, set once the file is evaluated

    @property
    def active(self) -> bool:
        return self.folder is not None

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
        self._discard()

    def _discard(self) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    def keep(self, result: BatchResult) -> None:
        """Keep one evaluated batch (in file order); a batch evaluated for counts only ends the keeping."""
        if self.folder is None:
            return
        if result.clean is None or result.quarantine is None:
            self._discard()
            return
        self.rows += result.rows
        self.bad_rows += result.quarantined_rows
        if self.rows >= ABANDON_AFTER_ROWS and self.bad_rows > self.max_bad_share * self.rows:
            self._discard()  # on its way to rejection: keep counting only
            return
        index = len(self.results)
        try:
            self._write(f"{index:08d}.clean.arrow", result.clean)
            if result.quarantine.num_rows:
                self._write(f"{index:08d}.quarantine.arrow", result.quarantine)
        except OSError:
            self._discard()  # a full disk: give up keeping, never fail the gate
            return
        self.results.append(
            {
                "rows": result.rows,
                "clean_rows": result.clean_rows,
                "rule_counts": result.rule_counts,
                "samples": result.samples,
                "per_value_casts": result.per_value_casts,
                "quarantine": bool(result.quarantine.num_rows),
            }
        )

    def _write(self, name: str, table: pa.Table) -> None:
        assert self.folder is not None
        path = self.folder / name
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        self.bytes += path.stat().st_size

    def publish(self) -> None:
        """Make the kept evaluation of the file just judged (and accepted) available to clean."""
        if self.folder is None:
            return
        _remove_stale(self.root)
        try:
            if shutil.disk_usage(self.root).free < FREE_SPACE_FACTOR * self.bytes:
                return
            meta = {
                "version": PARSE_VERSION,
                "rows": self.rows,
                "contract_version": self.contract_version,
                "partition_date": self.partition_date,
                "rescued_columns": list(self.rescued_columns),
                "batches": self.results,
            }
            (self.folder / _META).write_text(json.dumps(meta))
            os.rename(self.folder, self.root / address(self.sha256, self.format))
            self.folder = None
        except (OSError, TypeError, ValueError):
            pass  # already published by another run (same bytes, same rows), no space, a sample JSON cannot hold


class ClaimedParse:
    """A published evaluation this process took for itself; removed when the context is left."""

    def __init__(self, folder: Path, meta: dict[str, object]) -> None:
        self.folder = folder
        self.rescued_columns = tuple(meta["rescued_columns"])  # type: ignore[arg-type]
        self._batches: list[dict[str, object]] = list(meta["batches"])  # type: ignore[arg-type]
        self.count = len(self._batches)

    def __enter__(self) -> ClaimedParse:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def results(self, source_file: str) -> Iterator[BatchResult]:
        """The kept batches in file order, their ``_source_file`` set to ``source_file`` (the archive key)."""
        for index, kept in enumerate(self._batches):
            clean = self._read(f"{index:08d}.clean.arrow", source_file)
            quarantine = self._read(f"{index:08d}.quarantine.arrow", source_file) if kept["quarantine"] else None
            yield BatchResult(
                rows=int(kept["rows"]),  # type: ignore[call-overload]
                clean_rows=int(kept["clean_rows"]),  # type: ignore[call-overload]
                clean=clean,
                quarantine=quarantine if quarantine is not None else QUARANTINE_SCHEMA.empty_table(),
                rule_counts=dict(kept["rule_counts"]),  # type: ignore[call-overload]
                samples=list(kept["samples"]),  # type: ignore[call-overload]
                per_value_casts=int(kept["per_value_casts"]),  # type: ignore[call-overload]
            )

    def _read(self, name: str, source_file: str) -> pa.Table:
        table = pa.ipc.open_file(pa.memory_map(str(self.folder / name))).read_all()
        at = table.schema.get_field_index(SOURCE_FILE)
        constant = pa.repeat(pa.scalar(source_file, pa.string()), table.num_rows)
        return table.set_column(at, table.schema.field(at), constant)


def claim(
    sha256: str, file_format: FileFormat, rows: int | None, *, contract_version: str, partition_date: str
) -> ClaimedParse | None:
    """The published evaluation of these bytes, now this process's alone; None when there is none (parse then)."""
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
    expected = {
        "version": PARSE_VERSION,
        "rows": rows,
        "contract_version": contract_version,
        "partition_date": partition_date,
    }
    if any(meta.get(key) != value for key, value in expected.items()):
        shutil.rmtree(mine, ignore_errors=True)
        return None
    return ClaimedParse(mine, meta)


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
