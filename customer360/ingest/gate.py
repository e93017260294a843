"""The ingestion gate: every raw object ends exactly once in archive/ or rejected/, then leaves raw/.

The move is ordered so that a crash between any two steps leaves a state the next run completes
without loss or duplication (each step boundary is a ``fault`` hook point, named in quotes):

1. fetch the raw object to scratch and checksum it (sha256, md5) -- "fetched";
2. if the ledger already holds this arrival (same key, content, ETag and time), only step 6 is left;
3. validate it against the contract (``processing.inspect``);
4. copy it byte-for-byte, create-only, to archive/ (or to rejected/) -- "copied"; a destination that
   already holds the same bytes is a copy a crashed run made, reused as is; one holding other bytes
   under the same name means this is a correction, written beside it as a new version. A rejected
   copy then gets its report beside it -- "reported" (rewritten whole by a rerun);
5. verify the copy (size, and MD5 against the S3 ETag where the lake is S3) -- "verified", then append
   the ledger entry (create-only, its id derived from the arrival) -- "ledgered";
6. delete the raw object.

A rerun after a crash at any of those points finds either nothing written (starts over), a copy that
holds the same bytes (reused: no second archive version), or the ledger entry (only the delete is
left), so every arrival ends exactly once in archive/ or rejected/ with exactly one ledger entry.

Nothing here deletes or overwrites an archive object: archive writes are create-only and the lake
store itself refuses deletes under archive/.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import partial
from pathlib import PurePosixPath
from urllib.parse import quote

from customer360.contracts import DATASETS, Dataset
from customer360.lake import layout
from customer360.lake.ledger import (
    ARCHIVED,
    DUPLICATE,
    REJECTED,
    Ledger,
    LedgerEntry,
    arrival_id,
)
from customer360.lake.store import TEMP_NAME_PREFIX, ImmutableZoneError, LakeStore, ObjectExistsError, ObjectInfo
from customer360.lake.transfer import LocalCopy, fetch, local_path_of, scratch_dir
from customer360.processing.formats import SAMPLE_CHARS
from customer360.processing.inspect import ACTIONS, DEFAULT_ACTION, Verdict, inspect_file, reject

REPORT_SUFFIX = ".report.json"
_NO_LINK_ERRNOS = (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP)
MAX_HEADER_NAMES = 200


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

    def of(self, outcome: str) -> list[FileOutcome]:
        return [f for f in self.files if f.outcome == outcome]


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
    ledger = Ledger(store)
    for info in list(store.list(layout.raw_prefix(dataset.name, day))):
        # A key in a sub-folder of the day, or with '..' in it, lists under the day but is not a file of it.
        unroutable = key_defect(info.key)
        move = partial(admit, store, ledger, info, dataset=dataset, day=day, unroutable_reason=unroutable, fault=fault)
        move_isolated(run, store, info, log, move)
    return run


def move_isolated(
    run: GateRun, store: LakeStore, info: ObjectInfo, log: logging.Logger, move: Callable[[], FileOutcome]
) -> None:
    """One object's move: a failure leaves it in raw/ for the next run and never stops the others."""
    try:
        outcome = move()
    except Exception as error:  # noqa: BLE001 - isolate the file, report it, keep going
        if vanished(store, info.key):
            log.info("%s left raw/ while this run held it: another gate run moved it", info.key)
            return
        log.exception("could not move %s; it stays in raw/ for the next run", info.key)
        run.errors[info.key] = f"{type(error).__name__}: {error}"
        return
    run.files.append(outcome)
    reasons = f" ({', '.join(outcome.reasons)})" if outcome.reasons else ""
    log.info("%s -> %s %s%s", info.key, outcome.outcome, outcome.destination_key, reasons)


def vanished(store: LakeStore, key: str) -> bool:
    """Whether a raw object is gone. Raw objects leave only after the ledger has them, so a gate run that
    loses a race with another (a backfill's gate beside the sensor's) has nothing left to do for it."""
    return store.head(key) is None


def admit(
    store: LakeStore,
    ledger: Ledger,
    info: ObjectInfo,
    *,
    dataset: Dataset | None,
    day: date | None,
    unroutable_reason: tuple[str, str] | None = None,
    fault: FaultHook = _no_fault,
) -> FileOutcome:
    """Move one raw object through steps 1-6 of the module docstring."""
    source_name = PurePosixPath(info.key).name
    dataset_name = dataset.name if dataset else layout.UNROUTABLE
    partition = day.isoformat() if day else None
    with scratch_dir() as folder:
        copy = fetch(store, info.key, folder)
        fault("fetched", info.key)
        last_modified = info.last_modified.isoformat() if info.last_modified else None
        entry_id = arrival_id(info.key, copy.sha256, info.etag, last_modified)
        recorded = ledger.get(dataset_name, partition, entry_id)
        if recorded is not None:
            store.delete(info.key)
            return FileOutcome(
                info.key,
                recorded.outcome,
                recorded.destination_key,
                list(recorded.reasons),
                recorded.report_key,
                recorded.rows or 0,
                entry_id=entry_id,
                dataset=dataset_name,
                partition=partition,
            )

        if unroutable_reason or dataset is None or day is None:
            check, message = unroutable_reason or ("unroutable_key", "the key has no dataset and day")
            verdict = reject(check, message, samples=[{"key": info.key}])
        else:
            verdict = inspect_file(dataset, copy.path, source_name, day, copy.size)

        earlier = ledger.entries_of(dataset_name, partition)
        same_content = [e for e in earlier if e.sha256 == copy.sha256 and e.outcome == ARCHIVED]
        corrects = None
        report_key = None
        if verdict.accepted and same_content:
            outcome, destination = DUPLICATE, same_content[-1].destination_key
        elif verdict.accepted:
            assert dataset is not None and day is not None
            outcome = ARCHIVED
            destination, corrects = _write_versioned(
                store, layout.archive_key(dataset.name, day, source_name), copy, create_only=True
            )
        else:
            outcome = REJECTED
            destination, _ = _write_versioned(store, _rejected_key(info.key, dataset, day), copy, create_only=False)
        fault("copied", info.key)
        if outcome == REJECTED:
            report_key = destination + REPORT_SUFFIX
            store.put_bytes(report_key, _report(info, copy, dataset, partition, verdict, destination))
            fault("reported", info.key)
        _verify(store, destination, copy)
        fault("verified", info.key)
        entry = LedgerEntry(
            entry_id=entry_id,
            dataset=dataset_name,
            partition=partition,
            raw_key=info.key,
            source_name=source_name,
            size=copy.size,
            sha256=copy.sha256,
            etag=info.etag,
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
        ledger.append(entry)
        fault("ledgered", info.key)
        store.delete(info.key)
        return FileOutcome(
            info.key,
            outcome,
            destination,
            verdict.reasons,
            report_key,
            verdict.rows,
            verdict.bad_rows,
            corrects,
            entry_id=entry_id,
            dataset=dataset_name,
            partition=partition,
        )


def _rejected_key(raw_key: str, dataset: Dataset | None, day: date | None) -> str:
    """Where a refused raw object goes: its day's rejected/ folder, else rejected/_unroutable/.

    Upstream may land keys this lake would never write (``..`` or empty segments, control characters);
    such segments are percent-escaped so the rejected copy can never land outside rejected/.
    """
    if dataset is not None and day is not None:
        relative = raw_key.removeprefix(layout.raw_prefix(dataset.name, day))
        return _safe_key(layout.rejected_key(dataset.name, day, relative))
    return _safe_key(layout.unroutable_rejected_key(raw_key))


def _safe_key(key: str) -> str:
    segments = []
    for segment in key.split("/"):
        if segment in ("", ".", "..") or segment.startswith(TEMP_NAME_PREFIX):
            segment = "%" if not segment else "%2E" + segment[1:].replace(".", "%2E")
        segments.append("".join(c if c.isprintable() else quote(c, safe="") for c in segment))
    return "/".join(segments)


def _write_versioned(store: LakeStore, key: str, copy: LocalCopy, *, create_only: bool) -> tuple[str, str | None]:
    """Write under ``key``; if other bytes hold it, as a new version beside them. Returns (key, superseded)."""
    existing = store.head(key)
    if existing is None:
        try:
            _put(store, key, copy, create_only=create_only)
            return key, None
        except ObjectExistsError:
            existing = store.head(key)  # a concurrent writer won the race; compare below
    if existing is not None and _holds(store, key, existing, copy):
        return key, None
    versioned = _version_key(key, copy.sha256)
    if store.head(versioned) is None:
        # Exists already only when an earlier run wrote the same content and crashed before its ledger entry.
        with contextlib.suppress(ObjectExistsError):
            _put(store, versioned, copy, create_only=create_only)
    return versioned, key


def _put(store: LakeStore, key: str, copy: LocalCopy, *, create_only: bool) -> None:
    """Copy the fetched bytes to ``key``: a hard link on a local-folder lake, an upload otherwise."""
    link = getattr(store, "link_file", None)
    if callable(link) and local_path_of(store, key) is not None:
        try:
            link(key, copy.path, create_only=create_only)
            return
        except OSError as error:
            # Not the same filesystem (or no hard links there): fall back to copying the bytes.
            if isinstance(error, ImmutableZoneError) or error.errno not in _NO_LINK_ERRNOS:
                raise
    store.put_file(key, copy.path, create_only=create_only)


def _version_key(key: str, sha256: str) -> str:
    """``crm.csv.gz`` -> ``crm.v-<sha12>.csv.gz``: beside the old version, same extension."""
    path = PurePosixPath(key)
    name = path.name
    for extension in (".csv.gz", ".jsonl.gz", ".csv", ".jsonl"):
        if name.lower().endswith(extension):
            stem, ext = name[: -len(extension)], name[-len(extension) :]
            break
    else:
        stem, ext = name, ""
    return str(path.with_name(f"{stem}.v-{sha256[:12]}{ext}"))


def _holds(store: LakeStore, key: str, info: ObjectInfo, copy: LocalCopy) -> bool:
    """Whether the object at ``key`` holds exactly the bytes of ``copy``."""
    if info.size != copy.size:
        return False
    local = local_path_of(store, key)
    if local is not None and local.exists() and os.path.samefile(local, copy.path):
        return True  # the hard link made by _put: the very same bytes on disk
    if info.etag and _is_md5(info.etag) and copy.md5 is not None:
        return info.etag.strip('"') == copy.md5
    with scratch_dir() as folder:
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
    copy: LocalCopy,
    dataset: Dataset | None,
    partition: str | None,
    verdict: Verdict,
    destination: str,
) -> bytes:
    """The machine-readable rejection report a person can act on (never the file's content)."""
    report = {
        "dataset": dataset.name if dataset else None,
        "partition": partition,
        "source_key": info.key,
        "rejected_key": destination,
        "size": copy.size,
        "sha256": copy.sha256,
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
    return json.dumps(report, indent=2, default=str).encode()


def route(key: str) -> tuple[Dataset | None, date | None, tuple[str, str] | None]:
    """Which dataset and day's gate a raw key goes to, or why it goes to none (the unroutable sweep).

    Any key under a valid ``raw/<dataset>/<YYYY-MM-DD>/`` routes to that day's gate, which lists the
    whole prefix, so it also judges the file name there (``key_defect``): a bad key inside a day's folder
    is rejected, reported and alerted on as part of that day.
    """
    parsed = layout.parse_raw_key(key)
    segments = key.split("/")
    if parsed is not None and parsed.dataset in DATASETS and parsed.day is not None:
        return DATASETS[parsed.dataset], parsed.day, None
    defect = key_defect(key)
    if defect is not None and defect[0] == "unsafe_key":
        return None, None, defect
    if parsed is None:
        if len(segments) == 3 and segments[1] in DATASETS:
            return DATASETS[segments[1]], None, ("missing_partition_date", f"{key!r} has no <YYYY-MM-DD>/ folder")
        return None, None, ("unroutable_key", f"{key!r} is not raw/<dataset>/<YYYY-MM-DD>/<file name>")
    dataset = DATASETS.get(parsed.dataset)
    if dataset is None:
        return None, None, ("unknown_dataset", f"{parsed.dataset!r} is not one of {sorted(DATASETS)}")
    return dataset, None, ("invalid_partition_date", f"{parsed.day_text!r} is not a valid YYYY-MM-DD date")


def key_defect(key: str) -> tuple[str, str] | None:
    """Why a key under a day's folder is not a file of that day: unsafe segments, or a sub-folder."""
    if any(s in ("", ".", "..") for s in key.split("/")) or not all(c.isprintable() for c in key):
        return "unsafe_key", f"{key!r} has '.', '..' or empty path segments, or control characters"
    parsed = layout.parse_raw_key(key)
    if parsed is not None and "/" in parsed.name:
        return "unroutable_key", f"{key!r} is in a sub-folder of the day's folder"
    return None
