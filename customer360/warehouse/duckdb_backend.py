"""The embedded warehouse: one DuckDB file, loaded from staging through the LakeStore.

Why download through the LakeStore instead of ``read_parquet('s3://...')``: the lake is either a folder
or an S3 bucket, and httpfs is an extension DuckDB downloads at runtime (not possible everywhere we
run). Going through the LakeStore makes the load identical over both lake backends.

Why a connection per call: DuckDB allows one writer process per file. Holding a connection open for
the life of a resource would lock out every other run; opening per operation (the warehouse steps also
share a Dagster concurrency pool of size 1) keeps the lock as short as the work.

Semantics mirror the Snowflake backend's COPY: columns are matched to the table by name, case
insensitively; file columns the table lacks are ignored; table columns the file lacks load NULL; a
file that cannot be loaded aborts the whole partition (ON_ERROR = ABORT_STATEMENT).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from customer360.contracts.schemas import DUCKDB_TYPES, sql_type
from customer360.lake.store import LakeStore
from customer360.warehouse.base import (
    Dialect,
    FileLoadResult,
    LoadResult,
    Params,
    WarehouseLoadError,
    check_identifier,
    check_rows_in_partition,
    create_or_evolve_table,
    partition_load,
)

# Every statement this backend issues. Identifiers are validated (check_identifier) before formatting.
SET_UTC_SQL = "SET TimeZone = 'UTC'"
TABLE_COLUMNS_SQL = (
    "SELECT column_name FROM information_schema.columns "
    "WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position"
)
DECIMAL_COLUMNS_SQL = (
    "SELECT column_name, numeric_precision, numeric_scale FROM information_schema.columns "
    "WHERE table_schema = current_schema() AND table_name = ? AND data_type LIKE 'DECIMAL%'"
)
# CREATE TABLE and ADD COLUMN are base.CREATE_TABLE_SQL / base.ADD_COLUMN_SQL, shared with Snowflake.
# Widening a decimal rewrites the column in place, inside the load's transaction (exact: more places).
WIDEN_COLUMN_SQL = "ALTER TABLE {table} ALTER COLUMN {column} SET DATA TYPE {type}"
DELETE_PARTITION_SQL = "DELETE FROM {table} WHERE partition_date = ?"
# INSERT ... SELECT names both sides, so column order in the file does not matter.
INSERT_FILE_SQL = "INSERT INTO {table} ({columns}) SELECT {select} FROM read_parquet(?)"
COUNT_PARTITION_SQL = "SELECT count(*) FROM {table} WHERE partition_date = ?"


def duckdb_type(data_type: pa.DataType) -> str:
    """The DuckDB column type for an Arrow type (``contracts.schemas.DUCKDB_TYPES``: TIMESTAMP in UTC)."""
    return sql_type(data_type, DUCKDB_TYPES)


class DuckDBWarehouse:
    """A DuckDB file as the warehouse, loading staging Parquet read through ``lake``."""

    def __init__(self, path: str, lake: LakeStore) -> None:
        if path == ":memory:":
            # Each call opens its own connection, so an in-memory database would forget every load.
            raise ValueError("DuckDBWarehouse needs a database file path, not ':memory:'")
        self.path = path
        self.lake = lake

    @property
    def dialect(self) -> Dialect:
        return "duckdb"

    @contextmanager
    def _connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(self.path)
        try:
            # Casting Parquet's UTC instants into TIMESTAMP uses the session zone; pin it to UTC so the
            # stored wall-clock time does not depend on the machine's local zone.
            con.execute(SET_UTC_SQL)
            yield con
        finally:
            con.close()

    @contextmanager
    def _transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self._connect() as con:
            con.begin()
            try:
                yield con
            except BaseException:
                con.rollback()
                raise
            con.commit()

    def ensure_table(self, table: str, schema: pa.Schema) -> list[str]:
        with self._transaction() as con:
            return _ensure_table(con, table, schema)

    def replace_partition(
        self, table: str, schema: pa.Schema, partition_date: date, staging_keys: list[str]
    ) -> LoadResult:
        partition = partition_load(table, schema, partition_date, staging_keys)
        with tempfile.TemporaryDirectory(prefix="customer360-load-") as tmp:
            # Download before opening the database so the write lock is held only for the SQL work.
            local_files: list[tuple[str, Path]] = []
            for index, (key, name) in enumerate(zip(partition.keys, partition.file_names, strict=True)):
                local_path = Path(tmp) / f"{index:05d}-{name}"
                try:
                    self.lake.download(key, local_path)
                except FileNotFoundError as error:
                    raise WarehouseLoadError(f"{table} dt={partition_date}: staging file missing: {key}") from error
                local_files.append((key, local_path))

            with self._transaction() as con:
                added = _ensure_table(con, table, schema)
                table_columns = _table_columns(con, table)
                rows_deleted = _scalar(con.execute(DELETE_PARTITION_SQL.format(table=table), [partition_date]))
                files = [_load_file(con, table, table_columns, key, path) for key, path in local_files]
                rows_loaded = sum(f.rows_loaded for f in files)
                in_partition = _scalar(con.execute(COUNT_PARTITION_SQL.format(table=table), [partition_date]))
                check_rows_in_partition(table, partition_date, rows_loaded, in_partition)
        return LoadResult(table, partition_date, rows_loaded, rows_deleted, files, added)

    def delete_partition(self, table: str, partition_date: date) -> int:
        check_identifier(table, "table")
        with self._transaction() as con:
            if not _table_columns(con, table):
                return 0
            return _scalar(con.execute(DELETE_PARTITION_SQL.format(table=table), [partition_date]))

    def query(self, sql: str, params: Params | None = None) -> list[tuple]:
        with self._connect() as con:
            cursor = con.execute(sql, params)
            return cursor.fetchall() if cursor.description else []

    def execute_script(self, sql: str) -> None:
        with self._connect() as con:
            con.execute(sql)

    def execute_in_transaction(self, statements: Sequence[tuple[str, Params | None]]) -> list[list[tuple]]:
        results: list[list[tuple]] = []
        with self._transaction() as con:
            for sql, params in statements:
                cursor = con.execute(sql, params)
                results.append(cursor.fetchall() if cursor.description else [])
        return results


def _scalar(cursor: duckdb.DuckDBPyConnection) -> int:
    row = cursor.fetchone()
    return int(row[0]) if row else 0


def _table_columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    return [row[0] for row in con.execute(TABLE_COLUMNS_SQL, [table]).fetchall()]


def _ensure_table(con: duckdb.DuckDBPyConnection, table: str, schema: pa.Schema) -> list[str]:
    return create_or_evolve_table(
        table,
        schema,
        DUCKDB_TYPES,
        table_columns=lambda: _table_columns(con, table),
        execute=con.execute,
        decimal_columns=lambda: {
            name: (int(precision), int(scale))
            for name, precision, scale in con.execute(DECIMAL_COLUMNS_SQL, [table]).fetchall()
        },
        widen=lambda f, type_name: con.execute(WIDEN_COLUMN_SQL.format(table=table, column=f.name, type=type_name)),
    )


def _load_file(
    con: duckdb.DuckDBPyConnection, table: str, table_columns: list[str], key: str, path: Path
) -> FileLoadResult:
    parquet = pq.ParquetFile(path)
    rows_parsed = parquet.metadata.num_rows
    # Parquet names are data, not validated identifiers: quote them (doubling quotes) in the SELECT.
    file_columns = {name.lower(): name for name in parquet.schema_arrow.names}
    matched = [(column, file_columns[column.lower()]) for column in table_columns if column.lower() in file_columns]
    if not matched:
        raise WarehouseLoadError(f"{key}: no column matches table {table}")
    sql = INSERT_FILE_SQL.format(
        table=table,
        columns=", ".join(column for column, _ in matched),
        select=", ".join('"' + source.replace('"', '""') + '"' for _, source in matched),
    )
    try:
        rows_loaded = _scalar(con.execute(sql, [str(path)]))
    except duckdb.Error as error:
        raise WarehouseLoadError(f"{key}: load into {table} failed: {error}") from error
    return FileLoadResult(key, "LOADED", rows_parsed, rows_loaded, errors_seen=0, first_error=None)
