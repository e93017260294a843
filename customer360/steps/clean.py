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
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from customer360.contracts import Dataset
from customer360.contracts.schemas import QUARANTINE_SCHEMA, SOURCE_FILE, SOURCE_LINE, clean_schema
from customer360.lake import layout
from customer360.lake.ledger import Ledger, LedgerEntry, current_archive_versions
from customer360.lake.store import LakeStore
from customer360.lake.transfer import fetch_many, parquet_keys, scratch_dir
from customer360.processing.formats import StringBatches, detect_format
from customer360.processing.parsed import claim
from customer360.processing.standardize import BatchResult, ContractEvaluator, FileStats, evaluate_stream

PARQUET_COMPRESSION = "zstd"
# No dictionary pages: most clean columns are near-unique (ids, timestamps, amounts), where pyarrow builds a
# dictionary per column chunk only to fall back to plain pages; zstd compresses the few repetitive columns
# (event type, direction, lineage) as well on its own. Measured on a 1M-row activity day: 35% less CPU to
# write and 20% fewer bytes than with dictionaries.
PARQUET_DICTIONARY = False
PROGRESS_EVERY_ROWS = 1_000_000
# Parquet key-value metadata on every clean file: which contract wrote it, readable from the footer alone.
CONTRACT_VERSION_KEY = b"customer360.contract_version"
DATASET_KEY = b"customer360.dataset"
# Which archived arrival a clean or quarantine file holds: the upstream name as it arrived (its key only
# carries a slug of it), the archive object read and the ledger entry that made it current.
SOURCE_NAME_KEY = b"customer360.source_name"
ARCHIVE_KEY_KEY = b"customer360.archive_key"
LEDGER_ENTRY_KEY = b"customer360.ledger_entry"


def versioned_schema(dataset: Dataset, source: LedgerEntry | None = None) -> pa.Schema:
    """The clean schema, stamped with the contract (also in the ``_contract_version`` column of every row)
    and, for one file, with the arrival it holds."""
    return clean_schema(dataset).with_metadata(
        {CONTRACT_VERSION_KEY: dataset.version.encode(), DATASET_KEY: dataset.name.encode(), **_lineage(source)}
    )


def _lineage(source: LedgerEntry | None) -> dict[bytes, bytes]:
    if source is None:
        return {}
    return {
        SOURCE_NAME_KEY: source.source_name.encode("utf-8", "surrogateescape"),
        ARCHIVE_KEY_KEY: str(source.destination_key).encode("utf-8", "surrogateescape"),
        LEDGER_ENTRY_KEY: source.entry_id.encode(),
    }


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
    assert entry.destination_key is not None
    archive_key, source_name, rows_archived = entry.destination_key, entry.source_name, entry.rows or 0
    file_format = detect_format(source_name)
    assert file_format is not None, f"archived file {archive_key} has no accepted extension"
    stats = FileStats()
    clean_key = layout.clean_prefix(dataset.name, day) + clean_file_name(entry)
    quarantine_key = layout.quarantine_prefix(dataset.name, day) + clean_file_name(entry)
    with scratch_dir() as folder, contextlib.ExitStack() as stack:
        # The gate's evaluation of these very bytes when this machine holds it (processing.parsed), else the archive's.
        parsed = (
            claim(
                entry.sha256,
                file_format,
                entry.rows,
                contract_version=dataset.version,
                partition_date=day.isoformat(),
            )
            if entry.sha256
            else None
        )
        results: Iterable[BatchResult]
        if parsed is not None:
            stack.enter_context(parsed)
            results, rescued_columns = parsed.results(archive_key), parsed.rescued_columns
            log.info(
                "%s: writing the gate's typed rows (%d batches), not parsing the archive again",
                source_name,
                parsed.count,
            )
        else:
            (path,) = fetch_many(store, [archive_key], folder)
            reader = StringBatches(path, file_format)
            evaluator = ContractEvaluator(dataset, reader.read_header(), archive_key, day)
            results = evaluate_stream(evaluator, reader)
        clean_path, quarantine_path = folder / "clean.parquet", folder / "quarantine.parquet"
        quarantine_writer: pq.ParquetWriter | None = None
        started = time.perf_counter()
        with pq.ParquetWriter(
            clean_path,
            versioned_schema(dataset, entry),
            compression=PARQUET_COMPRESSION,
            use_dictionary=PARQUET_DICTIONARY,
        ) as writer:
            logged = 0
            for batch_result in results:
                stats.add(batch_result)
                assert batch_result.clean is not None and batch_result.quarantine is not None
                writer.write_table(batch_result.clean)
                if batch_result.quarantine.num_rows:
                    if quarantine_writer is None:
                        quarantine_writer = pq.ParquetWriter(
                            quarantine_path,
                            QUARANTINE_SCHEMA.with_metadata({**(QUARANTINE_SCHEMA.metadata or {}), **_lineage(entry)}),
                            compression=PARQUET_COMPRESSION,
                            use_dictionary=PARQUET_DICTIONARY,
                        )
                    quarantine_writer.write_table(batch_result.quarantine)
                if stats.rows - logged >= PROGRESS_EVERY_ROWS:
                    logged = stats.rows
                    rate = stats.rows / max(time.perf_counter() - started, 1e-9)
                    log.info("%s: %d rows typed (%.0f rows/s)", source_name, stats.rows, rate)
        if parsed is None:
            rescued_columns = evaluator.rescued_columns
        stats.rescued_columns = rescued_columns
        if quarantine_writer is not None:
            quarantine_writer.close()
        store.put_file(clean_key, clean_path)
        if quarantine_writer is not None:
            store.put_file(quarantine_key, quarantine_path)
    quarantined = quarantine_key if quarantine_writer else None
    return CleanFile(archive_key, clean_key, quarantined, rows_archived, stats, source_name)


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
