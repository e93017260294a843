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

from customer360.lake.store import LakeStore
from customer360.warehouse.base import (
    Dialect,
    FileLoadResult,
    LoadResult,
    Params,
    WarehouseLoadError,
    check_identifier,
    check_schema,
    new_fields,
    staging_partition,
)

# Every statement this backend issues. Identifiers are validated (check_identifier) before formatting.
SET_UTC_SQL = "SET TimeZone = 'UTC'"
TABLE_COLUMNS_SQL = (
    "SELECT column_name FROM information_schema.columns "
    "WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position"
)
CREATE_TABLE_SQL = "CREATE TABLE IF NOT EXISTS {table} (\n    {columns}\n)"
# IF NOT EXISTS: two runs evolving the same table one after the other must both succeed.
ADD_COLUMN_SQL = "ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} {type}"
DELETE_PARTITION_SQL = "DELETE FROM {table} WHERE partition_date = ?"
# INSERT ... SELECT names both sides, so column order in the file does not matter.
INSERT_FILE_SQL = "INSERT INTO {table} ({columns}) SELECT {select} FROM read_parquet(?)"
COUNT_PARTITION_SQL = "SELECT count(*) FROM {table} WHERE partition_date = ?"


def duckdb_type(data_type: pa.DataType) -> str:
    """The DuckDB column type for an Arrow type.

    Timestamps become TIMESTAMP holding UTC wall-clock time (like TIMESTAMP_NTZ on Snowflake) so that
    both backends return the same values and date arithmetic never depends on a session time zone.
    """
    if pa.types.is_boolean(data_type):
        return "BOOLEAN"
    if pa.types.is_integer(data_type):
        return {
            pa.int8(): "TINYINT",
            pa.int16(): "SMALLINT",
            pa.int32(): "INTEGER",
            pa.int64(): "BIGINT",
            pa.uint8(): "UTINYINT",
            pa.uint16(): "USMALLINT",
            pa.uint32(): "UINTEGER",
            pa.uint64(): "UBIGINT",
        }[data_type]
    if pa.types.is_float32(data_type):
        return "FLOAT"
    if pa.types.is_floating(data_type):
        return "DOUBLE"
    if pa.types.is_decimal(data_type):
        return f"DECIMAL({data_type.precision},{data_type.scale})"
    if pa.types.is_string(data_type) or pa.types.is_large_string(data_type):
        return "VARCHAR"
    if pa.types.is_date(data_type):
        return "DATE"
    if pa.types.is_timestamp(data_type):
        return "TIMESTAMP"
    if pa.types.is_binary(data_type) or pa.types.is_large_binary(data_type):
        return "BLOB"
    raise TypeError(f"no DuckDB mapping for Arrow type {data_type}")


def column_definition(arrow_field: pa.Field, type_name: str) -> str:
    """``name TYPE [NOT NULL]``: the schema's nullability is part of the staging contract."""
    return f"{arrow_field.name} {type_name}" + ("" if arrow_field.nullable else " NOT NULL")


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
        check_identifier(table, "table")
        check_schema(schema, partitioned=True)
        partition = staging_partition(staging_keys, partition_date)
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
                if in_partition != rows_loaded:
                    # Rows for other days would survive the next replay's delete and duplicate them.
                    raise WarehouseLoadError(
                        f"{table}: {rows_loaded} rows loaded from dt={partition_date} but {in_partition} "
                        f"carry partition_date={partition_date}; staging files hold rows of other days"
                    )
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
    check_identifier(table, "table")
    check_schema(schema)
    existing = _table_columns(con, table)
    if not existing:
        columns = ",\n    ".join(column_definition(f, duckdb_type(f.type)) for f in schema)
        con.execute(CREATE_TABLE_SQL.format(table=table, columns=columns))
        return []
    added = new_fields(schema, existing)
    for arrow_field in added:
        con.execute(ADD_COLUMN_SQL.format(table=table, column=arrow_field.name, type=duckdb_type(arrow_field.type)))
    return [f.name for f in added]


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
