"""The file ledger: a permanent, append-only record of every file the gate has ever seen.

Why in the lake and not in Dagster's event log or a database: the ledger is the audit trail of the
trust boundary, so it lives beside the archive it describes, with no horizon (Snowflake forgets its load
history after 64 days, Auto Loader's checkpoint is tied to one stream). Each entry is one small JSON
object written create-only under ``ledger/<dataset>/dt=<day>/<entry id>.json``; nothing is ever
rewritten, so concurrent gates cannot lose each other's entries.

The entry id is derived from the arrival's identity (raw key, content hash, the raw object's ETag and
modification time), which makes the gate's ledger write idempotent: a gate that crashed after writing
the entry and reruns finds it and only finishes the move.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import date

from customer360.lake.layout import LEDGER_ZONE, UNROUTABLE, ledger_prefix
from customer360.lake.store import LakeStore, ObjectExistsError

ARCHIVED = "archived"
REJECTED = "rejected"
DUPLICATE = "duplicate"  # identical content already archived for the day: recorded, not archived twice
OUTCOMES = (ARCHIVED, REJECTED, DUPLICATE)


@dataclass(frozen=True)
class LedgerEntry:
    entry_id: str
    dataset: str
    partition: str | None  # the business date in the raw key, if it had a valid one
    raw_key: str
    source_name: str  # the file name upstream gave it; corrections share it
    size: int
    sha256: str
    etag: str | None
    raw_last_modified: str | None
    first_seen: str  # ISO-8601 UTC, when the gate handled the arrival
    outcome: str
    destination_key: str | None  # archive or rejected key holding the bytes
    report_key: str | None = None
    reasons: tuple[str, ...] = ()
    rows: int | None = None
    contract_version: str | None = None
    corrects: str | None = None  # the archive key of the version this one supersedes
    details: dict[str, object] = field(default_factory=dict)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True, indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes) -> LedgerEntry:
        raw = json.loads(data)
        raw["reasons"] = tuple(raw.get("reasons") or ())
        return cls(**raw)


def arrival_id(raw_key: str, sha256: str, etag: str | None, last_modified: str | None) -> str:
    identity = f"{raw_key}|{sha256}|{etag or ''}|{last_modified or ''}"
    return hashlib.sha256(identity.encode()).hexdigest()[:24]


def entry_key(dataset: str, partition: str | None, entry_id: str) -> str:
    if partition is None:
        return f"{ledger_prefix(dataset or UNROUTABLE)}undated/{entry_id}.json"
    return f"{ledger_prefix(dataset, date.fromisoformat(partition))}{entry_id}.json"


class Ledger:
    """Reads and appends ledger entries in a lake."""

    def __init__(self, store: LakeStore) -> None:
        self.store = store

    def append(self, entry: LedgerEntry) -> bool:
        """Record an entry; False when that arrival was already recorded (a rerun after a crash)."""
        try:
            self.store.put_bytes(
                entry_key(entry.dataset, entry.partition, entry.entry_id), entry.to_json(), create_only=True
            )
        except ObjectExistsError:
            return False
        return True

    def get(self, dataset: str, partition: str | None, entry_id: str) -> LedgerEntry | None:
        """The entry recorded for one arrival, or None: one read, whatever the day's history holds."""
        try:
            return LedgerEntry.from_json(self.store.read_bytes(entry_key(dataset, partition, entry_id)))
        except FileNotFoundError:
            return None

    def entries(self, dataset: str, day: date | None = None) -> list[LedgerEntry]:
        """Entries of a dataset (of one day if given), oldest first."""
        prefix = ledger_prefix(dataset, day)
        found = [
            LedgerEntry.from_json(self.store.read_bytes(o.key))
            for o in self.store.list(prefix)
            if o.key.endswith(".json")
        ]
        return sorted(found, key=lambda e: (e.first_seen, e.entry_id))

    def entries_of(self, dataset: str, partition: str | None) -> list[LedgerEntry]:
        """Entries of one partition (an ISO day), or of the dataset's undated arrivals when None."""
        if partition is not None:
            return self.entries(dataset, date.fromisoformat(partition))
        prefix = f"{ledger_prefix(dataset)}undated/"
        found = [LedgerEntry.from_json(self.store.read_bytes(o.key)) for o in self.store.list(prefix)]
        return sorted(found, key=lambda e: (e.first_seen, e.entry_id))

    def datasets(self) -> list[str]:
        return [prefix.rstrip("/").rsplit("/", 1)[-1] for prefix in self.store.list_prefixes(f"{LEDGER_ZONE}/")]


def current_archive_versions(entries: Iterable[LedgerEntry]) -> list[LedgerEntry]:
    """The archived files a day's downstream reads: the newest version of each upstream file name."""
    newest: dict[str, LedgerEntry] = {}
    for entry in entries:
        if entry.outcome == ARCHIVED:
            newest[entry.source_name] = entry  # entries come oldest first, so later versions win
    return sorted(newest.values(), key=lambda e: e.source_name)


def outstanding_rejections(entries: Iterable[LedgerEntry]) -> list[LedgerEntry]:
    """Rejected arrivals no later accepted arrival of the same file name has made good (oldest first).

    A day whose rejected file was resent fixed is healthy again; its rejection stays in the ledger and
    in rejected/ for the audit trail, but no longer fails the day's check.
    """
    open_: dict[str, LedgerEntry] = {}
    for entry in entries:
        if entry.outcome == REJECTED:
            open_[entry.raw_key] = entry
        else:
            for key, rejected in list(open_.items()):
                if rejected.source_name == entry.source_name:
                    del open_[key]
    return sorted(open_.values(), key=lambda e: (e.first_seen, e.entry_id))


def query(
    ledger: Ledger,
    *,
    dataset: str | None = None,
    day: date | None = None,
    outcome: str | None = None,
    key_contains: str | None = None,
    reason: str | None = None,
) -> Iterator[LedgerEntry]:
    """Filter the ledger the way the CLI asks it."""
    for name in [dataset] if dataset else ledger.datasets():
        for entry in ledger.entries(name, day):
            if outcome and entry.outcome != outcome:
                continue
            if reason and reason not in entry.reasons:
                continue
            if key_contains and key_contains not in entry.raw_key and key_contains not in (entry.destination_key or ""):
                continue
            yield entry
