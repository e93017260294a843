"""The ingestion gate: every raw object ends exactly once in archive/ or rejected/, then leaves raw/.

The move is ordered so that a crash between any two steps leaves a state the next run completes
without loss or duplication (each step boundary is a ``fault`` hook point, named in quotes):

1. snapshot the raw object into a scratch file the lake owns and checksum that copy (sha256, md5) --
   "fetched". One version, whatever upstream does next: on S3 one GET (its ETag names the version); in a
   local folder one descriptor opened without following links or blocking, copied (never hard-linked:
   upstream may still be writing) and refused if it changed while copied. Anything that is not a plain
   file (symlink, FIFO, socket, device, an empty folder where files belong) is never opened: rejected as
   ``not_a_regular_file`` with what it was;
2. if the ledger already holds this arrival (same key, content, ETag and time), only step 6 is left;
3. validate the copy against the contract (``processing.inspect``), or reject a key the lake cannot
   store (``lake.routing.key_defect``: unsafe characters, a name over 255 bytes, a sub-folder);
4. copy it byte-for-byte, create-only, to archive/ (or to rejected/) -- "copied": an accepted arrival
   that changes what is current for its name (``DayLedger.judge``) is archived under its name, or beside
   the old version when the name is taken by other bytes, or, for a revert to an earlier version, points
   at the archive object already holding those bytes; a resend that changes nothing is a ``duplicate``.
   A rejected arrival goes to its own folder ``rejected/.../<entry id>/`` and its report beside it --
   "reported"; both create-only, so no later arrival or upstream name ever overwrites them;
5. verify the copy (size, and MD5 against the S3 ETag where the lake is S3) -- "verified", then append
   the ledger entry (create-only, its id derived from the arrival) -- "ledgered";
6. delete the raw object, but only the version admitted (``delete_if_unchanged``: S3 If-Match on the
   ETag fetched; locally, only while the name still holds the inode copied). A version that replaced it
   meanwhile stays in raw/ and is the next run's arrival.

A rerun after a crash at any of those points finds either nothing written (starts over), a copy that
holds the same bytes (reused: no second archive version), or the ledger entry (only the delete is
left), so every arrival ends exactly once in archive/ or rejected/ with exactly one ledger entry. An
object gone before it could be read is recorded as ``vanished`` unless another gate run's ledger entry
shows that run moved it.

Nothing here deletes or overwrites an archive object: archive writes are create-only and the lake
store itself refuses deletes under archive/.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import partial
from pathlib import PurePosixPath

from customer360.contracts import Dataset
from customer360.lake import layout
from customer360.lake.layout import REPORT_SUFFIX
from customer360.lake.ledger import (
    DUPLICATE,
    REJECTED,
    VANISHED,
    DayLedger,
    Ledger,
    LedgerEntry,
    arrival_id,
)
from customer360.lake.routing import key_defect, route
from customer360.lake.store import (
    REGULAR,
    DeleteOutcome,
    LakeStore,
    NotRegularObjectError,
    ObjectChangedError,
    ObjectExistsError,
    ObjectInfo,
)
from customer360.lake.transfer import LocalCopy, checksums, fetch
from customer360.processing.clean_files import Arrival
from customer360.processing.formats import SAMPLE_CHARS, detect_format
from customer360.processing.inspect import ACTIONS, DEFAULT_ACTION, Verdict, inspect_file, reject
from customer360.processing.parsed import ParseTee

__all__ = ["REPORT_SUFFIX", "CRASH_POINTS", "GateRun", "FileOutcome", "run_gate", "admit"]

MAX_HEADER_NAMES = 200
NOT_REGULAR = "not_a_regular_file"


class CopyVerificationError(Exception):
    """The destination does not hold the bytes the gate wrote; the raw object is kept."""


@dataclass
class FileOutcome:
    raw_key: str
    outcome: str
    destination_key: str | None
    reasons: list[str] = field(default_factory=list)
    report_key: str | None = None
    rows: int = 0
    bad_rows: int = 0
    corrects: str | None = None
    entry_id: str | None = None  # the arrival's ledger entry: what alerts are deduplicated on
    dataset: str | None = None
    partition: str | None = None
    left_in_raw: str | None = None  # why the raw key was not removed (a newer version replaced it)

    def alert_fields(self) -> dict[str, object]:
        """What a rejection alert needs, as recorded in the rejected asset's materialization."""
        return {
            "entry_id": self.entry_id,
            "dataset": self.dataset,
            "partition": self.partition,
            "raw_key": self.raw_key,
            "reasons": list(self.reasons),
            "report_key": self.report_key,
        }


@dataclass
class GateRun:
    dataset: str
    day: date | None
    files: list[FileOutcome] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # raw key -> unexpected error, left in raw
    deferred: dict[str, str] = field(default_factory=dict)  # raw key -> why it waits for the next run
    moved_by_another_run: list[str] = field(default_factory=list)
    day_entries: list[LedgerEntry] = field(default_factory=list)  # the day's ledger after this run

    def of(self, outcome: str) -> list[FileOutcome]:
        return [f for f in self.files if f.outcome == outcome]


class DayLedgers:
    """The ledger views one gate run reads: each (dataset, partition) read once, on first use."""

    def __init__(self, store: LakeStore) -> None:
        self.ledger = Ledger(store)
        self._days: dict[tuple[str, str | None], DayLedger] = {}

    def day(self, dataset: str, partition: str | None) -> DayLedger:
        found = self._days.get((dataset, partition))
        if found is None:
            found = self._days[(dataset, partition)] = self.ledger.day(dataset, partition)
        return found


# Test hook: fault injection between the move's steps, called with (step, raw key). A crash is an
# exception raised from it. Steps in order; "reported" only happens for rejected files.
FaultHook = Callable[[str, str], None]
CRASH_POINTS = ("fetched", "copied", "reported", "verified", "ledgered")


def _no_fault(step: str, key: str) -> None:
    return None


def run_gate(
    store: LakeStore,
    dataset: Dataset,
    day: date,
    *,
    log: logging.Logger | None = None,
    fault: FaultHook = _no_fault,
) -> GateRun:
    """Move every raw object of one dataset and day; one bad file never blocks the others."""
    log = log or logging.getLogger(__name__)
    run = GateRun(dataset.name, day)
    ledgers = DayLedgers(store)
    for info in list(store.list(layout.raw_prefix(dataset.name, day))):
        # A key in a sub-folder of the day, with '..' in it, or a name the lake cannot store, lists under
        # the day but is not a file it can archive.
        defect = key_defect(info.key)
        move = partial(admit, store, ledgers, info, dataset=dataset, day=day, unroutable_reason=defect, fault=fault)
        move_isolated(run, store, ledgers, info, log, move)
    run.day_entries = list(ledgers.day(dataset.name, day.isoformat()).entries)
    return run


def move_isolated(
    run: GateRun,
    store: LakeStore,
    ledgers: DayLedgers,
    info: ObjectInfo,
    log: logging.Logger | logging.LoggerAdapter,  # type: ignore[type-arg]
    move: Callable[[], FileOutcome | None],
) -> None:
    """One object's move: a failure leaves it in raw/ for the next run and never stops the others."""
    try:
        outcome = move()
    except ObjectChangedError:
        log.info("%s changed while it was read (still being written?); left in raw/ for the next run", info.key)
        run.deferred[info.key] = "changed while it was read; left in raw/ for the next run"
        return
    except Exception as error:  # noqa: BLE001 - isolate the file, report it, keep going
        outcome = _gone_after_error(store, ledgers, info, log)
        if outcome is None:
            log.exception("could not move %r; it stays in raw/ for the next run", info.key)
            run.errors[info.key] = f"{type(error).__name__}: {error}"
            return
    if outcome is MOVED_ELSEWHERE:
        log.info("%r left raw/ while this run held it: another gate run moved it (its ledger entry says so)", info.key)
        run.moved_by_another_run.append(info.key)
        return
    assert isinstance(outcome, FileOutcome)
    run.files.append(outcome)
    reasons = f" ({', '.join(outcome.reasons)})" if outcome.reasons else ""
    log.info("%r -> %s %s%s", info.key, outcome.outcome, outcome.destination_key, reasons)
    if outcome.left_in_raw:
        log.warning("%r: %s", info.key, outcome.left_in_raw)


# What a move returns when the object was moved by another gate run: no outcome of this run.
MOVED_ELSEWHERE = FileOutcome("", "moved_elsewhere", None)


def _gone_after_error(
    store: LakeStore,
    ledgers: DayLedgers,
    info: ObjectInfo,
    log: logging.Logger | logging.LoggerAdapter,  # type: ignore[type-arg]
) -> FileOutcome | None:
    """After a failed move: if the object has left raw/, what became of it (else None: a real error)."""
    try:
        if store.head(info.key) is not None:
            return None
        dataset, day, _ = route(info.key)
        return _vanished(ledgers, info, dataset.name if dataset else layout.UNROUTABLE, day)
    except Exception:  # noqa: BLE001 - the original error is the one to report
        log.debug("could not tell whether %r is still in raw/", info.key, exc_info=True)
        return None


def _vanished(ledgers: DayLedgers, info: ObjectInfo, dataset_name: str, day: date | None) -> FileOutcome:
    """An object listed in raw/ that is gone before this run could read it.

    Raw objects leave only after the ledger has them, so a ledger entry for this very version (key, ETag,
    time) means another gate run moved it: nothing to record. Otherwise it was deleted (or replaced and
    then moved) upstream: recorded as ``vanished``, so the ledger shows it arrived and why it holds nothing.
    """
    partition = day.isoformat() if day else None
    book = ledgers.day(dataset_name, partition)
    book.refresh()
    listed_at = info.last_modified.isoformat() if info.last_modified else None
    # Matched on key and ETag (S3's GET and LIST render LastModified at different precisions).
    if any(e.raw_key == info.key and e.etag == info.etag and e.outcome != VANISHED for e in book.entries):
        return MOVED_ELSEWHERE
    entry = book.append(
        LedgerEntry(
            entry_id=arrival_id(info.key, "", info.etag, listed_at),
            dataset=dataset_name,
            partition=partition,
            raw_key=info.key,
            source_name=source_name_of(info.key),
            size=info.size,
            sha256="",
            etag=info.etag,
            raw_last_modified=listed_at,
            first_seen=datetime.now(UTC).isoformat(),
            outcome=VANISHED,
            destination_key=None,
            reasons=(VANISHED,),
            details={"message": "listed in raw/, then gone before the gate could move it (deleted upstream)"},
        )
    )
    return _file_outcome(info.key, entry)


def source_name_of(raw_key: str) -> str:
    """The file name upstream gave an arrival: its key below the day's folder (or its last segment)."""
    parsed = layout.parse_raw_key(raw_key)
    if parsed is not None and parsed.day is not None:
        return parsed.name
    return raw_key.rsplit("/", 1)[-1]


def admit(
    store: LakeStore,
    ledgers: DayLedgers,
    info: ObjectInfo,
    *,
    dataset: Dataset | None,
    day: date | None,
    unroutable_reason: tuple[str, str] | None = None,
    fault: FaultHook = _no_fault,
) -> FileOutcome:
    """Move one raw object through steps 1-6 of the module docstring."""
    source_name = source_name_of(info.key)
    dataset_name = dataset.name if dataset else layout.UNROUTABLE
    partition = day.isoformat() if day else None
    book = ledgers.day(dataset_name, partition)
    with store.scratch_dir() as folder:
        copy: LocalCopy | None = None
        not_regular: NotRegularObjectError | None = None
        if info.kind != REGULAR:
            not_regular = NotRegularObjectError(info.key, info.kind, f" -> {info.detail!r}" if info.detail else "")
        else:
            try:
                copy = fetch(store, info.key, folder)
            except NotRegularObjectError as error:  # replaced by one since it was listed
                not_regular = error
            except FileNotFoundError:
                return _vanished(ledgers, info, dataset_name, day)
        fault("fetched", info.key)
        source = copy.source if copy is not None and copy.source is not None else info
        last_modified = source.last_modified.isoformat() if source.last_modified else None
        sha256 = copy.sha256 if copy is not None else ""
        entry_id = arrival_id(info.key, sha256, source.etag, last_modified)
        recorded = book.get(entry_id)
        if recorded is not None:
            return _file_outcome(info.key, recorded, _delete_admitted(store, info.key, source.etag))

        plan: ArchivePlan | None = None
        if not_regular is not None:
            verdict = reject(
                NOT_REGULAR,
                f"{info.key!r} is a {not_regular.kind}{not_regular.detail}, not a plain file: it was not opened",
                samples=[{"key": info.key, "kind": not_regular.kind, "detail": not_regular.detail}],
            )
        elif unroutable_reason or dataset is None or day is None:
            check, message = unroutable_reason or ("unroutable_key", "the key has no dataset and day")
            verdict = reject(check, message, samples=[{"key": info.key}])
        else:
            assert copy is not None
            # Where an accepted arrival of these bytes will be archived, decided before the file is read: the
            # gate then writes its clean files while it types the rows, for clean to move in (processing.parsed).
            plan = _plan_archive(store, book, dataset, day, source_name, copy)
            tee = (
                ParseTee(dataset, Arrival(source_name, plan.key, entry_id), partition_date=day.isoformat())
                if plan.outcome != DUPLICATE and detect_format(source_name)
                else contextlib.nullcontext()
            )
            with tee as keep:
                verdict = inspect_file(dataset, copy.path, source_name, day, copy.size, keep=keep)
                if verdict.accepted and keep is not None:
                    keep.publish()

        corrects = None
        report_key = None
        destination: str | None
        if verdict.accepted:
            assert dataset is not None and day is not None and copy is not None and plan is not None
            outcome = plan.outcome
            destination = plan.key
            if not plan.written:
                destination = _write_planned(store, plan.key, layout.archive_key(dataset.name, day, source_name), copy)
            corrects = plan.superseded.destination_key if plan.superseded is not None else None
        else:
            outcome = REJECTED
            rejected = layout.rejected_key(dataset.name if dataset else None, day, entry_id, source_name)
            report_key = rejected + REPORT_SUFFIX
            destination = None
            if copy is not None:
                destination = rejected
                _write_create_only(store, destination, copy)
        fault("copied", info.key)
        if outcome == REJECTED:
            assert report_key is not None
            report = _report(info, copy, dataset, partition, verdict, destination, entry_id, source_name)
            with contextlib.suppress(ObjectExistsError):  # written by a run that crashed after it: kept
                store.put_bytes(report_key, report, create_only=True)
            fault("reported", info.key)
        if destination is not None:
            assert copy is not None
            _verify(store, destination, copy)
        fault("verified", info.key)
        entry = LedgerEntry(
            entry_id=entry_id,
            dataset=dataset_name,
            partition=partition,
            raw_key=info.key,
            source_name=source_name,
            size=copy.size if copy is not None else 0,
            sha256=sha256,
            etag=source.etag,
            raw_last_modified=last_modified,
            first_seen=datetime.now(UTC).isoformat(),
            outcome=outcome,
            destination_key=destination,
            report_key=report_key,
            reasons=tuple(verdict.reasons),
            rows=verdict.rows,
            contract_version=dataset.version if dataset else None,
            corrects=corrects,
            details={
                "bad_rows": verdict.bad_rows,
                "rule_counts": verdict.rule_counts,
                "schema_diff": verdict.schema_diff,
                "policy": verdict.policy(dataset),
            },
        )
        recorded = book.append(entry)  # another run's entry for this same arrival, if it got there first
        fault("ledgered", info.key)
        return _file_outcome(info.key, recorded, _delete_admitted(store, info.key, source.etag), verdict.bad_rows)


def _file_outcome(
    raw_key: str, entry: LedgerEntry, deleted: DeleteOutcome | None = None, bad_rows: int | None = None
) -> FileOutcome:
    left = None
    if deleted is DeleteOutcome.CHANGED:
        left = "a newer version replaced it in raw/ while the gate held it: left there for the next run"
    return FileOutcome(
        raw_key,
        entry.outcome,
        entry.destination_key,
        list(entry.reasons),
        entry.report_key,
        entry.rows or 0,
        int(entry.details.get("bad_rows") or 0) if bad_rows is None else bad_rows,  # type: ignore[call-overload]
        entry.corrects,
        entry_id=entry.entry_id,
        dataset=entry.dataset,
        partition=entry.partition,
        left_in_raw=left,
    )


def _delete_admitted(store: LakeStore, key: str, etag: str | None) -> DeleteOutcome:
    """Remove the raw object only if it is still the version admitted (step 6)."""
    return store.delete_if_unchanged(key, etag)


def _write_versioned(store: LakeStore, key: str, copy: LocalCopy) -> str:
    """Write under ``key`` (create-only); if other bytes hold it, as a new version beside them."""
    existing = store.head(key)
    if existing is None:
        try:
            store.link_or_put(key, copy.path, create_only=True)
            return key
        except ObjectExistsError:
            existing = store.head(key)  # a concurrent writer won the race; compare below
    if existing is not None and _holds(store, key, existing, copy):
        return key
    versioned = _version_key(key, copy)
    if store.head(versioned) is None:
        # Exists already only when an earlier run wrote the same content and crashed before its ledger entry.
        with contextlib.suppress(ObjectExistsError):
            store.link_or_put(versioned, copy.path, create_only=True)
    return versioned


@dataclass(frozen=True)
class ArchivePlan:
    """What step 4 does with an arrival if it is accepted, decided once, before the file is read.

    ``key`` is the archive object its bytes will be read from; ``written`` says that object holds them
    already (a duplicate's or a revert's current entry, or a run that crashed after its copy): archive
    objects never change, so that stays true. Only a concurrent gate run can make the planned write find
    its key taken, and step 4 then decides again (``_write_planned``).
    """

    outcome: str  # DUPLICATE or ARCHIVED (``DayLedger.judge``)
    key: str
    written: bool
    superseded: LedgerEntry | None = None


def _plan_archive(
    store: LakeStore, book: DayLedger, dataset: Dataset, day: date, source_name: str, copy: LocalCopy
) -> ArchivePlan:
    """``DayLedger.judge``, then the archive key: the name itself, or a version beside other bytes holding it."""
    outcome, holding, superseded = book.judge(source_name, copy.sha256)
    if holding is not None:  # the bytes are archived already: a duplicate, or a revert to an earlier version
        assert holding.destination_key is not None
        return ArchivePlan(outcome, holding.destination_key, True, superseded)
    key = layout.archive_key(dataset.name, day, source_name)
    existing = store.head(key)
    if existing is None:
        return ArchivePlan(outcome, key, False, superseded)
    if _holds(store, key, existing, copy):
        return ArchivePlan(outcome, key, True, superseded)
    return ArchivePlan(outcome, _version_key(key, copy), False, superseded)


def _write_planned(store: LakeStore, planned: str, key: str, copy: LocalCopy) -> str:
    """Write the copy under its planned archive key (create-only); taken meanwhile, decide again from ``key``."""
    try:
        store.link_or_put(planned, copy.path, create_only=True)
        return planned
    except ObjectExistsError:
        return _write_versioned(store, key, copy)


def _version_key(key: str, copy: LocalCopy) -> str:
    return str(PurePosixPath(key).with_name(layout.version_name(PurePosixPath(key).name, copy.sha256)))


def _write_create_only(store: LakeStore, key: str, copy: LocalCopy) -> None:
    """Write ``copy`` under ``key``, create-only; a copy already there from a crashed run is checked by _verify."""
    with contextlib.suppress(ObjectExistsError):
        store.link_or_put(key, copy.path, create_only=True)


def _holds(store: LakeStore, key: str, info: ObjectInfo, copy: LocalCopy) -> bool:
    """Whether the object at ``key`` holds exactly the bytes of ``copy``."""
    if info.size != copy.size:
        return False
    local = store.local_path(key)
    if local is not None:
        with contextlib.suppress(FileNotFoundError):
            if os.path.samefile(local, copy.path):
                return True  # the hard link made by link_or_put: the very same bytes on disk
        return checksums(local, md5=False)[1] == copy.sha256
    if info.etag and _is_md5(info.etag) and copy.md5 is not None:
        return info.etag.strip('"') == copy.md5
    with store.scratch_dir() as folder:
        return fetch(store, key, folder).sha256 == copy.sha256


def _verify(store: LakeStore, key: str, copy: LocalCopy) -> None:
    info = store.head(key)
    if info is None or not _holds(store, key, info, copy):
        raise CopyVerificationError(f"{key} does not hold the {copy.size} bytes (sha256 {copy.sha256}) written")


def _is_md5(etag: str) -> bool:
    value = etag.strip('"')
    return len(value) == 32 and "-" not in value and all(c in "0123456789abcdef" for c in value)


def _report(
    info: ObjectInfo,
    copy: LocalCopy | None,
    dataset: Dataset | None,
    partition: str | None,
    verdict: Verdict,
    destination: str | None,
    entry_id: str,
    source_name: str,
) -> bytes:
    """The machine-readable rejection report a person can act on (never the file's content).

    ``source_key`` and ``source_name`` are the key and name exactly as they arrived (JSON-escaped where they
    are not text); ``rejected_key`` is where the bytes are kept (None for what was not a plain file).
    """
    report = {
        "dataset": dataset.name if dataset else None,
        "partition": partition,
        "source_key": info.key,
        "source_name": source_name,
        "entry_id": entry_id,
        "rejected_key": destination,
        "kind": info.kind if copy is None else "file",
        "size": copy.size if copy is not None else info.size,
        "sha256": copy.sha256 if copy is not None else None,
        "contract_version": dataset.version if dataset else None,
        "rejected_at": datetime.now(UTC).isoformat(),
        "reasons": verdict.reasons,
        "failed_checks": [f.as_dict() for f in verdict.failed],
        "rows": verdict.rows,
        "bad_rows": verdict.bad_rows,
        "rule_counts": verdict.rule_counts,
        # Which level of the two-level policy refused the file, and the row threshold that applied.
        "policy": verdict.policy(dataset),
        "schema_diff": verdict.schema_diff,
        "header": [name[:SAMPLE_CHARS] for name in verdict.header[:MAX_HEADER_NAMES]],
        "action": "; ".join(dict.fromkeys(ACTIONS.get(f.check, DEFAULT_ACTION) for f in verdict.failed)),
    }
    # ensure_ascii (the default) keeps a name that is not UTF-8 representable: its bytes as \udcXX escapes.
    return json.dumps(report, indent=2, default=str).encode()
