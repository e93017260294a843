"""Validation of a written zone partition: pandera per batch, DuckDB for what spans the partition.

Why batches: a day of activity is tens of millions of rows; loading it into pandas at once would need
tens of GB. The files are read back one bounded batch at a time (``VALIDATION_BATCH_ROWS``), each batch
becomes an Arrow-backed pandas frame (no copy of the values' types) and is validated lazily with the
zone's generated pandera schema; failure counts are summed and a bounded sample of failure cases is
kept, each traced to its ``_source_file`` and ``_source_line``.

Why DuckDB for uniqueness and references: those invariants span every batch of the partition (and,
for references, another dataset's snapshot), so they are set queries. DuckDB streams the Parquet files
with a memory limit and a spill folder, as the staging step itself does.

The per-row contract rules were already enforced vectorized in Arrow by the ContractEvaluator when
clean was written; this module guards what the zone actually holds (schema, types, invariants), which
is what downstream trusts.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd
import pandera.pandas as pdp
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from customer360.checks.models import category_of
from customer360.contracts.schemas import RESCUED_DATA, SOURCE_FILE, SOURCE_LINE, SOURCE_POSITION

VALIDATION_BATCH_ROWS = 100_000
# Partitions up to FULL_VALIDATION_ROWS are validated row by row; bigger ones on about SAMPLE_VALIDATION_ROWS
# rows spread over their row groups (pandas + pandera cost ~1 s per million rows; a 10M-row day would
# spend longer validating than typing itself).
FULL_VALIDATION_ROWS = 2_000_000
SAMPLE_VALIDATION_ROWS = 1_000_000
MAX_SAMPLES = 20
_POSITION = ", ".join(SOURCE_POSITION)  # a sample's file and line, in SQL
DUCKDB_MEMORY_LIMIT = "400MB"  # as the staging step: the run process stays under 1 GiB


@dataclass
class Failures:
    """The failures of one check category: how many, of which kind, and a bounded sample."""

    count: int = 0
    by_check: Counter[str] = field(default_factory=Counter)
    samples: list[dict[str, object]] = field(default_factory=list)

    def add(self, check: str, count: int, samples: Iterable[dict[str, object]]) -> None:
        self.count += count
        self.by_check[check] += count
        for sample in samples:
            if len(self.samples) >= MAX_SAMPLES:
                break
            self.samples.append(sample)


@dataclass
class PartitionValidation:
    """What one pass over a partition's files found."""

    files: int = 0
    rows: int = 0
    rows_validated: int = 0  # by pandera; fewer than ``rows`` when the partition was sampled
    seconds: float = 0.0
    failures: dict[str, Failures] = field(default_factory=dict)
    rescued_columns: set[str] = field(default_factory=set)
    rescued_rows: int = 0
    rescued_files: set[str] = field(default_factory=set)
    newest: dict[str, object] = field(default_factory=dict)  # column -> max value seen

    def of(self, category: str) -> Failures:
        return self.failures.setdefault(category, Failures())


def validate_files(
    paths: list[Path],
    schema: pdp.DataFrameSchema,
    *,
    newest_of: Iterable[str] = (),
    batch_rows: int = VALIDATION_BATCH_ROWS,
    full_rows: int = FULL_VALIDATION_ROWS,
    sample_rows: int = SAMPLE_VALIDATION_ROWS,
) -> PartitionValidation:
    """Validate local Parquet files batch by batch with ``schema``; never raises for bad data.

    Small files of the same schema (a day of hourly activity files) are validated together, up to
    ``batch_rows`` rows at a time: pandera's cost is mostly per call, not per row.
    """
    started = time.perf_counter()
    result = PartitionValidation(files=len(paths))
    wanted_newest = list(newest_of)
    tracked = [RESCUED_DATA, SOURCE_FILE, *wanted_newest]
    pending: list[pa.RecordBatch] = []
    files = [pq.ParquetFile(path) for path in paths]
    total = sum(f.metadata.num_rows for f in files)
    # Above full_rows, pandera sees every stride-th row group (the first of each file always): the per-row
    # rules were enforced on every row by the contract evaluator; this guards the written zone's schema.
    stride = 1 if total <= full_rows else -(-total // sample_rows)

    def flush() -> None:
        if pending:
            table = pa.Table.from_batches(pending)
            result.rows_validated += table.num_rows
            _validate_batch(table, schema, result, f"{len(pending)} batch(es)")
            pending.clear()

    group_index = 0
    for path, parquet in zip(paths, files, strict=True):
        if pending and not parquet.schema_arrow.equals(pending[0].schema, check_metadata=False):
            flush()
        if parquet.metadata.num_rows == 0:  # an empty file still has a schema to check
            flush()
            _validate_batch(parquet.schema_arrow.empty_table(), schema, result, path.name)
            continue
        columns = [c for c in tracked if c in parquet.schema_arrow.names]
        for group in range(parquet.num_row_groups):
            sampled = group == 0 or group_index % stride == 0
            group_index += 1
            table = parquet.read_row_group(group, columns=None if sampled else columns)
            result.rows += table.num_rows
            for batch in table.to_batches():
                _track_rescued(batch, result)
                _track_newest(batch, wanted_newest, result)
                if not sampled:
                    continue
                if sum(b.num_rows for b in pending) + batch.num_rows > batch_rows:
                    flush()
                pending.append(batch.replace_schema_metadata(None))
    flush()
    result.seconds = time.perf_counter() - started
    return result


def _validate_batch(batch: pa.Table, schema: pdp.DataFrameSchema, result: PartitionValidation, file: str) -> None:
    frame = batch.to_pandas(types_mapper=pd.ArrowDtype)
    try:
        schema.validate(frame, lazy=True, inplace=True)
        return
    except pdp.errors.SchemaErrors as errors:
        cases = errors.failure_cases
    has_lineage = all(c in frame.columns for c in SOURCE_POSITION)
    grouped = cases.groupby(["check", "schema_context"], dropna=False, sort=False)
    for (check, context), group in grouped:
        category = category_of(str(check), str(context))
        samples = []
        for row in group.head(MAX_SAMPLES).itertuples(index=False):
            sample: dict[str, object] = {
                "check": str(check),
                "column": _column_of(row),
                "value": _text(row.failure_case),
            }
            index = row.index
            if has_lineage and index is not None and not pd.isna(index) and int(index) in frame.index:
                sample[SOURCE_FILE] = frame.at[int(index), SOURCE_FILE]
                sample[SOURCE_LINE] = int(frame.at[int(index), SOURCE_LINE])
            else:
                sample["file"] = file
            samples.append(sample)
        result.of(category).add(str(check), len(group), samples)


def _column_of(row: object) -> str | None:
    column = getattr(row, "column", None)
    if column == "failure_case":  # pandera's label for dataframe-wide checks; the value names the column
        value = getattr(row, "failure_case", None)
        return next(iter(value)) if isinstance(value, dict) and value else None
    return None if column is None or (isinstance(column, float) and pd.isna(column)) else str(column)


def _text(value: object) -> str | None:
    if value is None or (not isinstance(value, dict | list) and pd.isna(value)):
        return None
    if isinstance(value, dict):
        value = next(iter(value.values()), None)
    return str(value)[:200]


def _track_rescued(batch: pa.RecordBatch, result: PartitionValidation) -> None:
    """Which unknown source fields the rows kept in ``_rescued_data``.

    Every row of a file rescues the same fields (the file's header, or a JSON Lines batch's keys), so the
    first and last rescued row of each batch name them without parsing every row's JSON.
    """
    if RESCUED_DATA not in batch.schema.names:
        return
    rescued = batch.column(RESCUED_DATA)
    present = pc.is_valid(rescued)
    count = pc.sum(present).as_py() or 0
    if not count:
        return
    result.rescued_rows += count
    kept = batch.filter(present)
    values = kept.column(RESCUED_DATA)
    for position in {0, len(values) - 1}:
        result.rescued_columns.update(json.loads(values[position].as_py()))
    if SOURCE_FILE in kept.schema.names:
        result.rescued_files.update(pc.unique(kept.column(SOURCE_FILE)).to_pylist())


def _track_newest(batch: pa.RecordBatch, columns: list[str], result: PartitionValidation) -> None:
    for column in columns:
        if column not in batch.schema.names or batch.num_rows == 0:
            continue
        newest = pc.max(batch.column(column)).as_py()
        if newest is None:
            continue
        current = result.newest.get(column)
        if current is None or newest > current:  # type: ignore[operator]
            result.newest[column] = newest


_READ_OPTIONS = "union_by_name = true, hive_partitioning = false"  # no ``dt`` column from local paths


def _paths_sql(paths: list[Path]) -> str:
    return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths) + "]"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _connect(folder: Path) -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect(config={"memory_limit": DUCKDB_MEMORY_LIMIT, "temp_directory": str(folder / "spill")})
    connection.execute("SET TimeZone = 'UTC'")
    return connection


def duplicate_keys(paths: list[Path], key: list[str], folder: Path) -> Failures:
    """Rows sharing ``key`` across the files (e.g. two event_id rows in a day of staging activity)."""
    found = Failures()
    if not paths:
        return found
    keys = ", ".join(_quote(c) for c in key)
    present = " AND ".join(f"{_quote(c)} IS NOT NULL" for c in key)
    with _connect(folder) as connection:
        relation = f"read_parquet({_paths_sql(paths)}, {_READ_OPTIONS})"
        duplicated = f"SELECT {keys}, count(*) AS n FROM {relation} WHERE {present} GROUP BY {keys} HAVING count(*) > 1"
        (extra_rows,) = connection.execute(f"SELECT coalesce(sum(n - 1), 0) FROM ({duplicated})").fetchone()  # type: ignore[misc]
        if extra_rows:
            sample = connection.execute(
                f"SELECT {keys}, {_POSITION} FROM {relation} WHERE ({keys}) IN "
                f"(SELECT ({keys}) FROM ({duplicated}) ORDER BY {keys} LIMIT {MAX_SAMPLES // 2}) "
                f"ORDER BY {keys}, {_POSITION} LIMIT {MAX_SAMPLES}"
            ).fetchall()
            found.add(
                f"unique({', '.join(key)})",
                int(extra_rows),
                [
                    {
                        "check": f"unique({', '.join(key)})",
                        "column": ", ".join(key),
                        "value": ", ".join(str(v) for v in row[: len(key)]),
                        SOURCE_FILE: row[len(key)],
                        SOURCE_LINE: row[len(key) + 1],
                    }
                    for row in sample
                ],
            )
    return found


def missing_references(paths: list[Path], other: list[Path], on: list[str], folder: Path) -> tuple[Failures, int]:
    """Rows whose non-null ``on`` value has no row in ``other`` (e.g. an event of an unknown customer).

    Returns the failures and how many rows carried a reference at all.
    """
    found = Failures()
    if not paths:
        return found, 0
    columns = ", ".join(_quote(c) for c in on)
    not_null = " AND ".join(f"s.{_quote(c)} IS NOT NULL" for c in on)
    with _connect(folder) as connection:
        source = f"read_parquet({_paths_sql(paths)}, {_READ_OPTIONS})"
        if other:
            target = f"(SELECT DISTINCT {columns} FROM read_parquet({_paths_sql(other)}, {_READ_OPTIONS}))"
        else:
            target = f"(SELECT {columns} FROM {source} WHERE false)"
        orphans = f"SELECT s.* FROM {source} s ANTI JOIN {target} t USING ({columns}) WHERE {not_null}"
        (count,) = connection.execute(f"SELECT count(*) FROM ({orphans})").fetchone()  # type: ignore[misc]
        (referencing,) = connection.execute(f"SELECT count(*) FROM {source} s WHERE {not_null}").fetchone()  # type: ignore[misc]
        if count:
            sample = connection.execute(
                f"SELECT {columns}, {_POSITION} FROM ({orphans}) ORDER BY {_POSITION} LIMIT {MAX_SAMPLES}"
            ).fetchall()
            check = f"references({', '.join(on)})"
            found.add(
                check,
                int(count),
                [
                    {
                        "check": check,
                        "column": ", ".join(on),
                        "value": ", ".join(str(v) for v in row[: len(on)]),
                        SOURCE_FILE: row[len(on)],
                        SOURCE_LINE: row[len(on) + 1],
                    }
                    for row in sample
                ],
            )
    return found, int(referencing)


def parquet_rows(paths: Iterable[Path]) -> int:
    return sum(pq.ParquetFile(p).metadata.num_rows for p in paths)


def as_datetime(value: object) -> datetime | None:
    return value if isinstance(value, datetime) else None
