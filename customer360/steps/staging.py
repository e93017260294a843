"""staging/<dataset>: analytics-ready, deduplicated, joined, snapshot-style Parquet sized for COPY.

Two shapes, chosen by the contract:

- snapshot datasets (customers, plans): the day's partition is every entity as of that day: the
  previous snapshot plus the clean records since, newest record per key winning (the contract's
  ``order_by``). See ``snapshot_basis`` for which earlier snapshot that is, and when there may be none.
- event datasets (activity): the day's clean events, one row per ``dedup_key``.

A snapshot is never built over a missing or failed predecessor: that used to succeed with whatever clean
partitions existed (4,143 customers in the warehouse instead of 7,043). Every completed build writes a
manifest last (``_manifest.json``: files, rows, what it was built on), even for an empty day, after
deleting the old one first; so "this day's staging completed and passed its blocking checks" is a fact
in the lake that the next snapshot and the warehouse load both require.

Both are enriched with the contract's ``staging_joins`` against other snapshots of the same day.
DuckDB does the set work inside the step, with a memory limit and a spill folder, so a day of tens of
millions of events stays within bounded memory. Output files are capped in size (Snowflake loads
100-250 MB compressed files best) and named ``part-NNNNN.parquet``. Idempotent: the day's prefix is
deleted, then rewritten.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from customer360.contracts import DATASETS, Dataset
from customer360.contracts.schemas import (
    DUCKDB_LAKE_TYPES,
    PARTITION_COLUMN,
    RECORD_DATE,
    SOURCE_POSITION,
    sql_type,
)
from customer360.lake import layout
from customer360.lake.store import LakeStore
from customer360.lake.transfer import fetch_many, parquet_keys, scratch_dir

STAGING_FILE_BYTES = "200MB"
# DuckDB's default row group: reads well; a bigger one buffers more rows per writer thread and, under the
# memory limit, made a 10M-row day twice as slow. Files are cut at row-group boundaries.
STAGING_ROW_GROUP_ROWS = 122_880
# Up to this many rows a day's staging files are sorted by the dedup key, so a replay writes byte-for-byte
# the same files; a bigger day skips the sort (it would cost more than the dedup) and replays the same rows.
STAGING_SORTED_MAX_ROWS = 1_500_000
# With the run process's own ~300 MB (Python, Dagster, Arrow), this keeps a step under 1 GiB; DuckDB spills
# to the scratch folder beyond it.
DUCKDB_MEMORY_LIMIT = "400MB"


@dataclass
class StagingResult:
    dataset: str
    day: date
    keys: list[str] = field(default_factory=list)
    rows: int = 0
    input_rows: int = 0
    seconds: float = 0.0
    rebuilt_from_history: bool = False
    built_on: date | None = None
    """Snapshots: the earlier day whose snapshot this one carries forward (None: rebuilt from history)."""
    schema: list[tuple[str, str]] = field(default_factory=list)

    @property
    def duplicates_dropped(self) -> int:
        """Clean event rows that repeated a key already kept (events only; snapshots replace by key)."""
        return self.input_rows - self.rows if self.input_rows else 0


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# Local lakes hand DuckDB paths under .../dt=YYYY-MM-DD/; without hive_partitioning = false it would add a
# ``dt`` column on the local backend only, and staging's schema would differ between backends.
def _paths_sql(paths: list[Path]) -> str:
    return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths) + "]"


class SnapshotPredecessorError(RuntimeError):
    """A snapshot's predecessor day has files but no completed snapshot; the message names it and what to run."""

    def __init__(self, dataset: Dataset, day: date, missing: list[date], *, more: bool = False) -> None:
        self.dataset, self.day, self.missing = dataset.name, day, missing
        first, last = missing[0], missing[-1]
        if first == last:
            what = f"{last} has files but no completed {dataset.name} snapshot (its gate, clean or staging failed"
            holds = "that day holds"
        else:
            what = f"{len(missing)} days with files from {first} to {last} have no completed {dataset.name} snapshot"
            what += " (their gate, clean or staging failed"
            holds = "those days hold"
        super().__init__(
            f"staging/{dataset.staging_name} {day}: refusing to build the {dataset.name} snapshot over a missing "
            f"predecessor: {what}, or never ran), so this day's snapshot would lose what {holds}. Build the days in "
            f"order from "
            f"{first}{' (or earlier: older days lack one too)' if more else ''}: "
            f"customer360 replay --start {first} --end {day}"
        )


@dataclass(frozen=True)
class StagingManifest:
    """What a completed staging build wrote for one day (``layout.staging_manifest_key``)."""

    dataset: str
    day: date
    files: list[str]
    rows: int
    built_at: str
    built_on: date | None = None
    rebuilt_from_history: bool = False

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "dataset": self.dataset,
                "day": self.day.isoformat(),
                "files": self.files,
                "rows": self.rows,
                "built_at": self.built_at,
                "built_on": self.built_on.isoformat() if self.built_on else None,
                "rebuilt_from_history": self.rebuilt_from_history,
            },
            indent=1,
        ).encode()

    @classmethod
    def from_json(cls, data: bytes) -> StagingManifest:
        raw = json.loads(data)
        return cls(
            dataset=raw["dataset"],
            day=date.fromisoformat(raw["day"]),
            files=list(raw["files"]),
            rows=int(raw["rows"]),
            built_at=raw["built_at"],
            built_on=date.fromisoformat(raw["built_on"]) if raw.get("built_on") else None,
            rebuilt_from_history=bool(raw.get("rebuilt_from_history")),
        )


def read_staging_manifest(store: LakeStore, dataset: Dataset, day: date) -> StagingManifest | None:
    """The manifest of ``day``'s completed staging build, or None when the day's staging has not completed."""
    try:
        return StagingManifest.from_json(store.read_bytes(layout.staging_manifest_key(dataset.name, day)))
    except FileNotFoundError:
        return None


def commit_staging(store: LakeStore, result: StagingResult) -> StagingManifest:
    """Vouch for a build: write its manifest (the last write of a staging build)."""
    manifest = StagingManifest(
        dataset=result.dataset,
        day=result.day,
        files=list(result.keys),
        rows=result.rows,
        built_at=datetime.now(UTC).isoformat(),
        built_on=result.built_on,
        rebuilt_from_history=result.rebuilt_from_history,
    )
    store.put_bytes(layout.staging_manifest_key(result.dataset, result.day), manifest.to_json())
    store.delete(layout.staging_build_marker_key(result.dataset, result.day))
    return manifest


def abandon_staging(store: LakeStore, dataset: str, day: date) -> None:
    """A build that ends without a manifest (it failed, or its blocking checks did): no longer in progress."""
    store.delete(layout.staging_build_marker_key(dataset, day))


def staging_build_started(store: LakeStore, dataset: Dataset, day: date) -> datetime | None:
    """When the day's staging build that is running now started; None when none is (or it left no trace)."""
    try:
        data = json.loads(store.read_bytes(layout.staging_build_marker_key(dataset.name, day)))
        return datetime.fromisoformat(data["started_at"])
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None


def days_with_files(store: LakeStore) -> set[date]:
    """Every day some dataset has files for: waiting in raw/, or seen by the gate (ledger, archive, rejected).

    A day that is in none of them genuinely has no data, so a snapshot may carry an earlier one across it.
    """
    zones = ("raw/{}/", "archive/{}/", "rejected/{}/", f"{layout.LEDGER_ZONE}/{{}}/", "clean/{}/")
    days: set[date] = set()
    for name in DATASETS:
        for zone in zones:
            days.update(d for d in map(layout.partition_day, store.list_prefixes(zone.format(name))) if d)
    return days


@dataclass(frozen=True)
class SnapshotBasis:
    """What a snapshot is built from: an earlier snapshot (or none) plus the clean days since."""

    previous: date | None
    clean_days: list[date]


# How far back a refusal looks for the first day to replay from (each step is one manifest read).
_MISSING_LOOKBACK = 62


def snapshot_basis(store: LakeStore, dataset: Dataset, day: date, first_day: date | None = None) -> SnapshotBasis:
    """The earlier snapshot ``day``'s is built on, or SnapshotPredecessorError when building would lose data.

    * the previous day's snapshot, when that day's staging completed (the usual case);
    * else the snapshot of the latest earlier day with files (for any dataset), the days in between having
      genuinely no data: nothing in raw/, ledger/, archive/, rejected/ or clean/ for any dataset (the
      automation builds snapshots only on days with files, so a quiet weekend has none);
    * no earlier snapshot at all, rebuilt from every clean partition up to the day, only when no earlier
      day has files: the first day of the partitions (``first_day``; days before it are history, not
      predecessors), or a lake whose data starts on this day;
    * otherwise refuse: the latest earlier day with files has no completed snapshot (its gate, clean or
      staging failed or never ran), and building anyway is what silently shrank snapshots.
    """
    clean_days = sorted(d for d in map(layout.partition_day, store.list_prefixes(f"clean/{dataset.name}/")) if d)
    previous_day = day - timedelta(days=1)
    if read_staging_manifest(store, dataset, previous_day) is not None:
        return SnapshotBasis(previous_day, [d for d in clean_days if d == day])
    earlier = sorted(
        (d for d in days_with_files(store) if d < day and (first_day is None or d >= first_day)), reverse=True
    )
    if not earlier:
        return SnapshotBasis(None, [d for d in clean_days if d <= day])
    if read_staging_manifest(store, dataset, earlier[0]) is not None:
        return SnapshotBasis(earlier[0], [d for d in clean_days if earlier[0] < d <= day])
    missing = [earlier[0]]
    for candidate in earlier[1:]:
        if read_staging_manifest(store, dataset, candidate) is not None:
            break
        if len(missing) == _MISSING_LOOKBACK:
            raise SnapshotPredecessorError(dataset, day, missing, more=True)
        missing.insert(0, candidate)
    raise SnapshotPredecessorError(dataset, day, missing)


def build_staging(
    store: LakeStore, dataset: Dataset, day: date, *, first_day: date | None = None, commit: bool = True
) -> StagingResult:
    """Rewrite ``day``'s staging partition; ``commit`` writes its manifest (the asset commits after its checks).

    ``first_day`` is the first day of the partitions (see ``snapshot_basis``). Raises
    SnapshotPredecessorError, having removed only the day's manifest, when a snapshot's predecessor is
    missing or failed.
    """
    started = time.perf_counter()
    result = StagingResult(dataset.name, day)
    # First of all: an attempt that fails from here on leaves the day without a manifest, i.e. not staged,
    # so nothing (the next snapshot, the warehouse load) builds on files an unfinished or failed build left.
    # The marker says "being rebuilt" to the warehouse and the mart while the day has no manifest.
    store.put_bytes(
        layout.staging_build_marker_key(dataset.name, day),
        json.dumps({"started_at": datetime.now(UTC).isoformat()}).encode(),
    )
    store.delete(layout.staging_manifest_key(dataset.name, day))
    try:
        _rebuild(store, dataset, day, first_day, result)
    except BaseException:
        abandon_staging(store, dataset.name, day)
        raise
    if commit:
        commit_staging(store, result)
    result.seconds = time.perf_counter() - started
    return result


def _rebuild(store: LakeStore, dataset: Dataset, day: date, first_day: date | None, result: StagingResult) -> None:
    basis = snapshot_basis(store, dataset, day, first_day) if dataset.snapshot else None
    with scratch_dir() as folder:
        output = folder / "out"
        with _connect(folder) as connection:
            relations = _join_relations(store, dataset, day, folder)
            if basis is not None:
                source_sql = _snapshot_source(store, dataset, basis, folder, result)
                ordered = True
            else:
                clean_keys = parquet_keys(store, layout.clean_prefix(dataset.name, day))
                source_sql, result.input_rows = _event_source(connection, store, dataset, clean_keys, folder)
                ordered = result.input_rows <= STAGING_SORTED_MAX_ROWS
            # Nothing to stage (no clean data yet) writes no files: the day's prefix is still emptied below.
            if source_sql is not None:
                connection.execute(
                    f"COPY ({_enriched(dataset, day, source_sql, relations, ordered=ordered)}) TO '{output}' "
                    f"(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {STAGING_ROW_GROUP_ROWS}, "
                    f"FILE_SIZE_BYTES '{STAGING_FILE_BYTES}', FILENAME_PATTERN 'part-{{i}}')"
                )
        files = sorted(output.glob("*.parquet"), key=lambda p: int(p.stem.split("-")[-1]))
        store.delete_prefix(layout.staging_prefix(dataset.name, day))
        for index, path in enumerate(files):
            key = f"{layout.staging_prefix(dataset.name, day)}part-{index:05d}.parquet"
            store.put_file(key, path)
            result.keys.append(key)
            result.rows += pq.ParquetFile(path).metadata.num_rows
        if files:
            schema = pq.read_schema(files[0])
            result.schema = [(f.name, str(f.type)) for f in schema]


def _connect(folder: Path) -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect(
        config={
            "memory_limit": DUCKDB_MEMORY_LIMIT,
            "temp_directory": str(folder / "spill"),
            "preserve_insertion_order": False,
        }
    )
    connection.execute("SET TimeZone = 'UTC'")
    return connection


def _event_source(
    connection: duckdb.DuckDBPyConnection, store: LakeStore, dataset: Dataset, clean_keys: list[str], folder: Path
) -> tuple[str | None, int]:
    """The day's events, one per ``dedup_key``, as one query; and how many clean rows it reads.

    Deduplicating a day of tens of millions of events with one window over every row sorts or hashes the
    whole day. But only about 1% of events are repeated, so the work is split by what a row needs: first
    the 64-bit hashes of keys seen more than once (one narrow column, a small table); rows whose key hash
    is not among them are unique and stream straight through; only the few others go through the window
    that keeps the first copy. A hash collision only sends a unique row the slow way, never drops one.
    """
    if not clean_keys:
        return None, 0
    paths = fetch_many(store, clean_keys, folder)
    rows = sum(pq.ParquetFile(path).metadata.num_rows for path in paths)
    order = ", ".join(f"{_quote(c)}" for c in dataset.order_by) or ", ".join(SOURCE_POSITION)
    keys = ", ".join(_quote(c) for c in dataset.dedup_key)
    row_hash = f"hash({', '.join(f's.{_quote(c)}' for c in dataset.dedup_key)})"
    read = f"read_parquet({_paths_sql(paths)}, union_by_name = true, hive_partitioning = false)"
    connection.execute(
        f"CREATE TEMP TABLE repeated_keys AS SELECT h FROM (SELECT hash({keys}) AS h FROM {read}) "
        "GROUP BY h HAVING count(*) > 1"
    )
    # ANTI/SEMI JOIN rather than [NOT] IN (subquery): IN's NULL semantics gave a plan twice as slow on 10M rows.
    unique = f"SELECT s.* FROM {read} s ANTI JOIN repeated_keys r ON {row_hash} = r.h"
    repeated = f"SELECT s.* FROM {read} s SEMI JOIN repeated_keys r ON {row_hash} = r.h"
    first_copies = f"SELECT * FROM ({repeated}) QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY {order}) = 1"
    return f"{unique} UNION ALL {first_copies}", rows


def _snapshot_source(
    store: LakeStore, dataset: Dataset, basis: SnapshotBasis, folder: Path, result: StagingResult
) -> str | None:
    """The basis's snapshot + the clean records since; or every clean day up to this one when there is none."""
    joined = {alias for join in dataset.staging_joins for _, alias in join.columns}
    parts: list[str] = []
    result.built_on = basis.previous
    result.rebuilt_from_history = basis.previous is None
    if basis.previous is not None:
        manifest = read_staging_manifest(store, dataset, basis.previous)
        if manifest is None:  # deleted since snapshot_basis read it: a concurrent rebuild of that day
            raise SnapshotPredecessorError(dataset, result.day, [basis.previous])
        if manifest.files:
            previous = fetch_many(store, manifest.files, folder)
            excluded = ", ".join(_quote(c) for c in [PARTITION_COLUMN, *sorted(joined)])
            parts.append(
                f"SELECT * EXCLUDE ({excluded}) "
                f"FROM read_parquet({_paths_sql(previous)}, union_by_name = true, hive_partitioning = false)"
            )
    history = [key for d in basis.clean_days for key in parquet_keys(store, layout.clean_prefix(dataset.name, d))]
    if history:
        paths = fetch_many(store, history, folder)
        parts.append(
            f"SELECT * EXCLUDE ({PARTITION_COLUMN}), {PARTITION_COLUMN} AS {RECORD_DATE} "
            f"FROM read_parquet({_paths_sql(paths)}, union_by_name = true, hive_partitioning = false)"
        )
    if not parts:
        return None
    union = " UNION ALL BY NAME ".join(f"({part})" for part in parts)
    order = ", ".join(f"{_quote(c)} DESC NULLS LAST" for c in dataset.order_by)
    keys = ", ".join(_quote(c) for c in dataset.dedup_key)
    return f"SELECT * FROM ({union}) QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY {order}) = 1"


def _join_relations(store: LakeStore, dataset: Dataset, day: date, folder: Path) -> list[str]:
    """One SQL relation per staging join: the other dataset's snapshot of the day (fetched once)."""
    relations = []
    for join in dataset.staging_joins:
        other = DATASETS[join.dataset]
        keys = parquet_keys(store, layout.staging_prefix(other.name, day))
        columns = ", ".join(f"{_quote(c)}" for c in join.on)
        wanted = ", ".join(_quote(c) for c, _ in join.columns)
        if keys:
            paths = fetch_many(store, keys, folder)
            relations.append(
                f"(SELECT DISTINCT ON ({columns}) {columns}, {wanted} "
                f"FROM read_parquet({_paths_sql(paths)}, hive_partitioning = false))"
            )
        else:
            types = _column_types(other, [c for c, _ in join.columns] + list(join.on))
            nulls = ", ".join(f"NULL::{types[c]} AS {_quote(c)}" for c in [*join.on, *[c for c, _ in join.columns]])
            relations.append(f"(SELECT {nulls} WHERE false)")
    return relations


def _enriched(dataset: Dataset, day: date, source_sql: str, relations: list[str], *, ordered: bool = True) -> str:
    """The source rows, stamped with the day, plus the columns the contract's staging joins bring."""
    select = ["s.*"]
    joins: list[str] = []
    for index, (join, relation) in enumerate(zip(dataset.staging_joins, relations, strict=True)):
        alias = f"j{index}"
        joins.append(f"LEFT JOIN {relation} {alias} USING ({', '.join(_quote(c) for c in join.on)})")
        for column, name in join.columns:
            if column not in join.on or name != column:
                select.append(f"{alias}.{_quote(column)} AS {_quote(name)}")
    # Snapshot sources carry _record_date instead of partition_date; events keep their own until here.
    carried = "*" if dataset.snapshot else f"* EXCLUDE ({PARTITION_COLUMN})"
    source = f"(SELECT DATE '{day.isoformat()}' AS {PARTITION_COLUMN}, {carried} FROM ({source_sql}))"
    query = f"SELECT {', '.join(select)} FROM {source} s {' '.join(joins)}"
    if not ordered:
        return query
    # A stable order makes a replayed day byte-for-byte the same staging files (see STAGING_SORTED_MAX_ROWS).
    return f"{query} ORDER BY {', '.join(f's.{_quote(c)}' for c in dataset.dedup_key)}"


def _column_types(dataset: Dataset, columns: list[str]) -> dict[str, str]:
    """The types this step's DuckDB reads the columns with from Parquet (for typed NULLs standing in for them)."""
    return {column: sql_type(dataset.field(column).arrow_type, DUCKDB_LAKE_TYPES) for column in columns}
