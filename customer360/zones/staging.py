"""staging/<dataset>: analytics-ready, deduplicated, joined, snapshot-style Parquet sized for COPY.

Two shapes, chosen by the contract:

- snapshot datasets (customers, plans): the day's partition is every entity as of that day: the
  previous day's snapshot plus the day's clean records, newest record per key winning (the contract's
  ``order_by``). When the previous snapshot does not exist (the first day, or a gap), it is rebuilt from
  every clean partition up to the day, so any day can be replayed on its own.
- event datasets (activity): the day's clean events, one row per ``dedup_key``.

Both are enriched with the contract's ``staging_joins`` against other snapshots of the same day.
DuckDB does the set work inside the step, with a memory limit and a spill folder, so a day of tens of
millions of events stays within bounded memory. Output files are capped in size (Snowflake loads
100-250 MB compressed files best) and named ``part-NNNNN.parquet``. Idempotent: the day's prefix is
deleted, then rewritten.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from customer360.contracts import DATASETS, Dataset
from customer360.lake import layout
from customer360.lake.store import LakeStore
from customer360.lake.transfer import fetch_many, parquet_keys, scratch_dir
from customer360.processing.standardize import clean_schema

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
    schema: list[tuple[str, str]] = field(default_factory=list)

    @property
    def duplicates_dropped(self) -> int:
        """Clean event rows that repeated a key already kept (events only; snapshots replace by key)."""
        return self.input_rows - self.rows if self.input_rows else 0


def staging_schema(dataset: Dataset) -> pa.Schema:
    """The columns a staging partition has, derived from the contract (used before any file exists)."""
    fields = [pa.field("partition_date", pa.date32(), nullable=False)]
    fields += [f for f in clean_schema(dataset) if f.name != "partition_date"]
    if dataset.snapshot:
        fields.append(pa.field("_record_date", pa.date32()))
    for join in dataset.staging_joins:
        other = DATASETS[join.dataset]
        fields += [pa.field(alias, other.field(column).arrow_type) for column, alias in join.columns
                   if alias not in {f.name for f in fields}]
    return pa.schema(fields)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# Local lakes hand DuckDB paths under .../dt=YYYY-MM-DD/; without hive_partitioning = false it would add a
# ``dt`` column on the local backend only, and staging's schema would differ between backends.
def _paths_sql(paths: list[Path]) -> str:
    return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths) + "]"


def build_staging(store: LakeStore, dataset: Dataset, day: date) -> StagingResult:
    started = time.perf_counter()
    result = StagingResult(dataset.name, day)
    with scratch_dir() as folder:
        output = folder / "out"
        with _connect(folder) as connection:
            clean_keys = parquet_keys(store, layout.clean_prefix(dataset.name, day))
            relations = _join_relations(store, dataset, day, folder)
            if dataset.snapshot:
                source_sql = _snapshot_source(store, dataset, day, clean_keys, folder, result)
                ordered = True
            else:
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
    result.seconds = time.perf_counter() - started
    return result


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
    order = ", ".join(f"{_quote(c)}" for c in dataset.order_by) or "_source_file, _source_line"
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
    store: LakeStore,
    dataset: Dataset,
    day: date,
    clean_keys: list[str],
    folder: Path,
    result: StagingResult,
) -> str | None:
    """Previous snapshot + the day's records; or every clean day up to this one when there is no previous."""
    previous_keys = parquet_keys(store, layout.staging_prefix(dataset.name, day - timedelta(days=1)))
    joined = {alias for join in dataset.staging_joins for _, alias in join.columns}
    parts: list[str] = []
    if previous_keys:
        previous = fetch_many(store, previous_keys, folder)
        excluded = ", ".join(_quote(c) for c in ["partition_date", *sorted(joined)])
        parts.append(
            f"SELECT * EXCLUDE ({excluded}) "
            f"FROM read_parquet({_paths_sql(previous)}, union_by_name = true, hive_partitioning = false)"
        )
        history = clean_keys
    else:
        result.rebuilt_from_history = True
        history = [
            key
            for prefix in store.list_prefixes(f"clean/{dataset.name}/")
            if _day_of(prefix) is not None and _day_of(prefix) <= day  # type: ignore[operator]
            for key in parquet_keys(store, prefix)
        ]
    if history:
        paths = fetch_many(store, history, folder)
        parts.append(
            f"SELECT * EXCLUDE (partition_date), partition_date AS _record_date "
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
    carried = "*" if dataset.snapshot else "* EXCLUDE (partition_date)"
    source = f"(SELECT DATE '{day.isoformat()}' AS partition_date, {carried} FROM ({source_sql}))"
    query = f"SELECT {', '.join(select)} FROM {source} s {' '.join(joins)}"
    if not ordered:
        return query
    # A stable order makes a replayed day byte-for-byte the same staging files (see STAGING_SORTED_MAX_ROWS).
    return f"{query} ORDER BY {', '.join(f's.{_quote(c)}' for c in dataset.dedup_key)}"


def _column_types(dataset: Dataset, columns: list[str]) -> dict[str, str]:
    mapping = {"string": "VARCHAR", "int64": "BIGINT", "bool": "BOOLEAN", "date32[day]": "DATE"}
    types = {}
    for column in columns:
        arrow_type = str(dataset.field(column).arrow_type)
        if arrow_type.startswith("decimal128"):
            types[column] = arrow_type.replace("decimal128", "DECIMAL")
        elif arrow_type.startswith("timestamp"):
            types[column] = "TIMESTAMPTZ"
        else:
            types[column] = mapping[arrow_type]
    return types


def _day_of(prefix: str) -> date | None:
    part = prefix.rstrip("/").rsplit("/", 1)[-1]
    if not part.startswith("dt="):
        return None
    try:
        return date.fromisoformat(part[3:])
    except ValueError:
        return None
