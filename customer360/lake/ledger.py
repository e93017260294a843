"""The file ledger: a permanent, append-only record of every file the gate has ever seen.

Why in the lake and not in Dagster's event log or a database: the ledger is the audit trail of the
trust boundary, so it lives beside the archive it describes, with no horizon (Snowflake forgets its load
history after 64 days, Auto Loader's checkpoint is tied to one stream). Each entry is one small JSON
object written create-only under ``ledger/<dataset>/dt=<day>/<entry id>.json``; nothing is ever
rewritten, so concurrent gates cannot lose each other's entries.

The entry id is derived from the arrival's identity (raw key, content hash, the raw object's ETag and
modification time), which makes the gate's ledger write idempotent: a gate that crashed after writing
the entry and reruns finds it and only finishes the move.

What is current: the latest arrival under a file name is the day's fact for that name, whatever bytes it
repeats (``DayLedger.judge``). A correction is archived beside the old version; a revert to an earlier
version (v1, v2, v1 again) is archived again as current, reusing the archive object that already holds
those bytes; only a resend that changes nothing current (the same bytes as the name's current version,
or a new name carrying bytes some name currently holds) is a ``duplicate``.

A gate reads a day's entries once per run (``DayLedger``) and keeps that view current as it appends, so
gating n files costs n appends and one read of the day, not n reads of a growing day.
"""

from __future__ import annotations

import bisect
import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import date

from customer360.lake.layout import LEDGER_ZONE, UNROUTABLE, ledger_prefix
from customer360.lake.store import LakeStore, ObjectExistsError

ARCHIVED = "archived"
REJECTED = "rejected"
DUPLICATE = "duplicate"  # a resend that changes nothing current for the day: recorded, not archived twice
VANISHED = "vanished"  # left raw/ before the gate could read it (deleted upstream): recorded, nothing kept
OUTCOMES = (ARCHIVED, REJECTED, DUPLICATE, VANISHED)


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
    # surrogateescape: a local file name need not be UTF-8, and its identity must still be computable.
    return hashlib.sha256(identity.encode("utf-8", "surrogateescape")).hexdigest()[:24]


def entry_key(dataset: str, partition: str | None, entry_id: str) -> str:
    return f"{_partition_prefix(dataset, partition)}{entry_id}.json"


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
        return sorted(found, key=_order)

    def entries_of(self, dataset: str, partition: str | None) -> list[LedgerEntry]:
        """Entries of one partition (an ISO day), or of the dataset's undated arrivals when None."""
        return self.day(dataset, partition).entries

    def day(self, dataset: str, partition: str | None) -> DayLedger:
        """One partition's entries (or the dataset's undated ones), read now and kept in memory."""
        return DayLedger(self, dataset, partition)

    def datasets(self) -> list[str]:
        return [prefix.rstrip("/").rsplit("/", 1)[-1] for prefix in self.store.list_prefixes(f"{LEDGER_ZONE}/")]


def _order(entry: LedgerEntry) -> tuple[str, str]:
    return (entry.first_seen, entry.entry_id)


def _partition_prefix(dataset: str, partition: str | None) -> str:
    if partition is None:
        return f"{ledger_prefix(dataset or UNROUTABLE)}undated/"
    return ledger_prefix(dataset, date.fromisoformat(partition))


class DayLedger:
    """The entries of one (dataset, partition), read once, then kept current by this process's appends.

    What a gate run consults for every file: whether an arrival is already recorded (a rerun after a
    crash), and what is current per file name (``judge``). Reading the day once per run instead of once
    per file keeps a day of n files linear in n. Another gate run appending meanwhile is not seen until
    ``refresh``; that costs nothing in correctness: entry ids are derived from the arrival and written
    create-only, so ``append`` finds another run's entry for the same arrival and returns it.
    """

    def __init__(self, ledger: Ledger, dataset: str, partition: str | None) -> None:
        self.ledger = ledger
        self.dataset = dataset
        self.partition = partition
        self._prefix = _partition_prefix(dataset, partition)
        self.entries: list[LedgerEntry] = []
        self._by_id: dict[str, LedgerEntry] = {}
        self._current: dict[str, LedgerEntry] = {}  # source name -> its newest archived entry
        self._current_names_by_sha: dict[str, set[str]] = {}  # sha256 -> names whose current version it is
        self._archived: dict[tuple[str, str], LedgerEntry] = {}  # (source name, sha256) -> an archived entry
        self.refresh()

    def refresh(self) -> None:
        """Read the entries other runs appended since this view was read (one listing, new entries only)."""
        known = {entry_key(self.dataset, self.partition, i) for i in self._by_id}
        for info in self.ledger.store.list(self._prefix):
            if info.key.endswith(".json") and info.key not in known:
                self._add(LedgerEntry.from_json(self.ledger.store.read_bytes(info.key)))

    def get(self, entry_id: str) -> LedgerEntry | None:
        return self._by_id.get(entry_id)

    def append(self, entry: LedgerEntry) -> LedgerEntry:
        """Record ``entry`` (create-only); returns what the ledger holds for that arrival: it, or the entry
        another run recorded first."""
        if entry.entry_id in self._by_id:
            return self._by_id[entry.entry_id]
        if not self.ledger.append(entry):
            recorded = self.ledger.get(entry.dataset, entry.partition, entry.entry_id)
            entry = recorded if recorded is not None else entry
        self._add(entry)
        return entry

    def current(self, source_name: str) -> LedgerEntry | None:
        """The archived version the day's downstream reads for this file name, if any."""
        return self._current.get(source_name)

    def judge(self, source_name: str, sha256: str) -> tuple[str, LedgerEntry | None, LedgerEntry | None]:
        """What an accepted arrival of ``source_name`` with these bytes is: ``(outcome, holding, superseded)``.

        * ``(DUPLICATE, e, None)``: nothing current changes; ``e`` is the current entry holding the bytes.
        * ``(ARCHIVED, e, s)``: the arrival becomes the name's current version, superseding ``s`` (None
          for a first arrival); ``e`` is an earlier archived entry of this name with the same bytes (a
          revert, whose archive object is reused) or None (new bytes for this name: archive them).
        """
        current = self._current.get(source_name)
        if current is not None:
            if current.sha256 == sha256:
                return DUPLICATE, current, None
            return ARCHIVED, self._archived.get((source_name, sha256)), current
        holders = self._current_names_by_sha.get(sha256)
        if holders:
            return DUPLICATE, self._current[min(holders)], None
        return ARCHIVED, None, None

    def _add(self, entry: LedgerEntry) -> None:
        if entry.entry_id in self._by_id:
            return
        self._by_id[entry.entry_id] = entry
        position = bisect.bisect(self.entries, _order(entry), key=_order)
        self.entries.insert(position, entry)
        if entry.outcome != ARCHIVED:
            return
        self._archived.setdefault((entry.source_name, entry.sha256), entry)
        previous = self._current.get(entry.source_name)
        if previous is not None and _order(previous) > _order(entry):
            return  # an older entry read late (refresh): the name's current version stays
        if previous is not None:
            self._current_names_by_sha.get(previous.sha256, set()).discard(entry.source_name)
        self._current[entry.source_name] = entry
        self._current_names_by_sha.setdefault(entry.sha256, set()).add(entry.source_name)


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
