"""clean/<dataset>: the day's archived files, typed and standardized per the contract, as Parquet.

Reads only archive/ (never raw/): the ledger names the current version of each archived file of the
day, so a correction replaces its predecessor and a resend is not read twice. One Parquet file per
source file keeps the zone granular and every row traceable (``_source_file``, ``_source_line``); rows
that break a rule go to ``rejected/<dataset>/rows/`` with the rule, never dropped. Idempotent: the
day's clean and quarantine prefixes are deleted, then rewritten.

Each file is named after its archived arrival's ledger entry (``layout.derived_name``), not after the
upstream name alone: two names that slug alike (``crm part.csv``, ``crm_part.csv``) would otherwise
write the same clean file, and a 250-character name would not fit a file name at all. The upstream name,
archive key and ledger entry are in each Parquet file's key-value metadata (and in the asset's).

Where the gate judged the file on this machine, it has already written these two files while it typed
the rows (``processing.parsed``): clean checks they are of this very arrival and contract, and moves them
in (a hard link on a local lake); otherwise it parses and types the archived file itself.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from customer360.contracts import Dataset
from customer360.contracts.schemas import QUARANTINE_SCHEMA, SOURCE_FILE, SOURCE_LINE, clean_schema
from customer360.lake import layout
from customer360.lake.ledger import Ledger, LedgerEntry, current_archive_versions
from customer360.lake.store import LakeStore
from customer360.lake.transfer import fetch_many, parquet_keys, scratch_dir
from customer360.processing.clean_files import (
    ARCHIVE_KEY_KEY,
    CONTRACT_VERSION_KEY,
    DATASET_KEY,
    LEDGER_ENTRY_KEY,
    SOURCE_NAME_KEY,
    Arrival,
    CleanFileWriter,
    versioned_schema,
)
from customer360.processing.formats import StringBatches, detect_format
from customer360.processing.parsed import claim
from customer360.processing.standardize import ContractEvaluator, FileStats, evaluate_stream

__all__ = [
    "ARCHIVE_KEY_KEY",
    "CONTRACT_VERSION_KEY",
    "DATASET_KEY",
    "LEDGER_ENTRY_KEY",
    "SOURCE_NAME_KEY",
    "versioned_schema",
    "clean_partition",
    "read_clean",
    "read_quarantine",
    "query_quarantine",
]

PROGRESS_EVERY_ROWS = 1_000_000


def clean_file_name(entry: LedgerEntry) -> str:
    """The clean and quarantine file name of one archived arrival: unique per ledger entry, bounded."""
    return layout.derived_name(entry.source_name, entry.entry_id)


@dataclass
class CleanFile:
    archive_key: str
    clean_key: str
    quarantine_key: str | None
    rows_archived: int
    stats: FileStats
    source_name: str = ""


@dataclass
class CleanResult:
    dataset: str
    day: date
    files: list[CleanFile] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rows_archived(self) -> int:
        return sum(f.rows_archived for f in self.files)

    @property
    def rows_clean(self) -> int:
        return sum(f.stats.clean_rows for f in self.files)

    @property
    def rows_quarantined(self) -> int:
        return sum(f.stats.quarantined_rows for f in self.files)

    @property
    def rule_counts(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for f in self.files:
            for rule, count in f.stats.rule_counts.items():
                totals[rule] = totals.get(rule, 0) + count
        return totals

    @property
    def rescued_columns(self) -> list[str]:
        return sorted({c for f in self.files for c in f.stats.rescued_columns})


def clean_partition(store: LakeStore, dataset: Dataset, day: date, log: logging.Logger | None = None) -> CleanResult:
    log = log or logging.getLogger(__name__)
    started = time.perf_counter()
    result = CleanResult(dataset.name, day)
    sources = current_archive_versions(Ledger(store).entries(dataset.name, day))
    store.delete_prefix(layout.clean_prefix(dataset.name, day))
    store.delete_prefix(layout.quarantine_prefix(dataset.name, day))
    for entry in sources:
        result.files.append(_clean_file(store, dataset, day, entry, log))
    result.seconds = time.perf_counter() - started
    return result


def _clean_file(store: LakeStore, dataset: Dataset, day: date, entry: LedgerEntry, log: logging.Logger) -> CleanFile:
    arrival = Arrival.of(entry)
    clean_key = layout.clean_prefix(dataset.name, day) + clean_file_name(entry)
    quarantine_key = layout.quarantine_prefix(dataset.name, day) + clean_file_name(entry)
    # The files the gate wrote of this very arrival while it judged it, when this machine holds them
    # (processing.parsed); else the archive is parsed and typed here.
    parsed = claim(arrival, entry.rows, contract_version=dataset.version, partition_date=day.isoformat())
    if parsed is not None:
        with parsed:
            log.info("%s: moving the gate's clean files, not parsing the archive again", entry.source_name)
            store.link_or_put(clean_key, parsed.clean_path)
            if parsed.quarantine_path is not None:
                store.link_or_put(quarantine_key, parsed.quarantine_path)
            quarantined = quarantine_key if parsed.quarantine_path is not None else None
            return CleanFile(
                arrival.archive_key, clean_key, quarantined, entry.rows or 0, parsed.stats, entry.source_name
            )
    with scratch_dir() as folder:
        writer, stats = _type_archive(store, dataset, day, arrival, folder, log)
        store.put_file(clean_key, writer.clean_path)
        if writer.has_quarantine:
            store.put_file(quarantine_key, writer.quarantine_path)
    quarantined = quarantine_key if writer.has_quarantine else None
    return CleanFile(arrival.archive_key, clean_key, quarantined, entry.rows or 0, stats, entry.source_name)


def _type_archive(
    store: LakeStore, dataset: Dataset, day: date, arrival: Arrival, folder: Path, log: logging.Logger
) -> tuple[CleanFileWriter, FileStats]:
    """Parse and type the archived file into ``folder``'s clean and quarantine files."""
    file_format = detect_format(arrival.source_name)
    assert file_format is not None, f"archived file {arrival.archive_key} has no accepted extension"
    (path,) = fetch_many(store, [arrival.archive_key], folder)
    reader = StringBatches(path, file_format)
    evaluator = ContractEvaluator(dataset, reader.read_header(), arrival.archive_key, day)
    stats = FileStats()
    writer = CleanFileWriter(folder, dataset, arrival)
    started, logged = time.perf_counter(), 0
    try:
        for result in evaluate_stream(evaluator, reader):
            stats.add(result)
            writer.write(result)
            if stats.rows - logged >= PROGRESS_EVERY_ROWS:
                logged = stats.rows
                rate = stats.rows / max(time.perf_counter() - started, 1e-9)
                log.info("%s: %d rows typed (%.0f rows/s)", arrival.source_name, stats.rows, rate)
    finally:
        writer.close()
    stats.rescued_columns = evaluator.rescued_columns
    return writer, stats


def read_clean(store: LakeStore, dataset: Dataset, day: date) -> pa.Table:
    """The day's clean rows as one table (small datasets and tests; big ones are read by DuckDB)."""
    return _read_parquet(store, parquet_keys(store, layout.clean_prefix(dataset.name, day)), clean_schema(dataset))


def read_quarantine(store: LakeStore, dataset: Dataset, day: date) -> pa.Table:
    return _read_parquet(store, parquet_keys(store, layout.quarantine_prefix(dataset.name, day)), QUARANTINE_SCHEMA)


def query_quarantine(
    store: LakeStore,
    dataset: Dataset,
    day: date,
    *,
    rule: str | None = None,
    column: str | None = None,
    source_contains: str | None = None,
) -> pa.Table:
    """The day's quarantined rows, optionally only those that broke ``rule`` (on ``column``), in source order.

    Each row says which rule it broke first, on which column, with which raw value, how many rules it
    broke in all, the whole raw record as JSON, and its source file and line.
    """
    table = read_quarantine(store, dataset, day)
    if rule is not None:
        table = table.filter(pc.equal(table["rule"], rule))
    if column is not None:
        table = table.filter(pc.equal(table["column"], column))
    if source_contains is not None:
        table = table.filter(pc.match_substring(table[SOURCE_FILE], source_contains))
    return table.sort_by([(SOURCE_FILE, "ascending"), (SOURCE_LINE, "ascending")])


def _read_parquet(store: LakeStore, keys: list[str], schema: pa.Schema) -> pa.Table:
    if not keys:
        return schema.empty_table()
    with scratch_dir() as folder:
        tables = [pq.read_table(path) for path in fetch_many(store, keys, folder)]
        return pa.concat_tables(tables, promote_options="default")
