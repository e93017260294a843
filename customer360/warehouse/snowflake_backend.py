"""The Snowflake warehouse: staging Parquet in S3 loaded with COPY INTO through an external stage.

Staging is the formal contract with Snowflake: the stage covers ``s3://<bucket>[/<prefix>]/staging/``
and nothing else of the lake. Access goes through a storage integration (an IAM role Snowflake assumes),
so no AWS keys live in Snowflake or in this code.

Why DELETE + COPY in one transaction with FORCE = TRUE: Snowflake's own load metadata skips files it
loaded in the last 64 days, which is the wrong idempotency for us. A replay must reload a day (after a
restore, say) and a corrected file keeps its name; after 64 days the metadata expires and a plain COPY
would load a file twice. Deleting the day's rows and copying its files in one transaction makes the
partition exactly "these files" every time, and a failure rolls back to the previous rows.

Every SQL statement the product issues against Snowflake is a module-level template below.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from customer360.contracts.schemas import SNOWFLAKE_TYPES, sql_type
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

if TYPE_CHECKING:
    # dagster-snowflake pulls in Snowpark (seconds of import time); only annotations need it here.
    from dagster_snowflake import SnowflakeResource

# --- Every statement the Snowflake backend issues -------------------------------------------------
# Identifiers are validated before formatting; values are bound with the connector's pyformat style.
CREATE_STAGE_SQL = (
    "CREATE STAGE IF NOT EXISTS {stage} URL = '{url}'{storage_integration} FILE_FORMAT = (TYPE = 'PARQUET')"
)
STORAGE_INTEGRATION_CLAUSE = " STORAGE_INTEGRATION = {storage_integration}"
# Unquoted names are stored upper case; CURRENT_SCHEMA() is the resource's database.schema.
TABLE_COLUMNS_SQL = (
    "SELECT column_name FROM information_schema.columns "
    "WHERE table_schema = CURRENT_SCHEMA() AND table_name = %(table)s ORDER BY ordinal_position"
)
DECIMAL_COLUMNS_SQL = (
    "SELECT column_name, numeric_precision, numeric_scale FROM information_schema.columns "
    "WHERE table_schema = CURRENT_SCHEMA() AND table_name = %(table)s AND data_type = 'NUMBER'"
)
# CREATE TABLE and ADD COLUMN are base.CREATE_TABLE_SQL / base.ADD_COLUMN_SQL, shared with DuckDB.
# Widening a decimal: Snowflake's ALTER COLUMN ... SET DATA TYPE may raise a NUMBER's precision but never
# change its scale, so the values move through a scratch column. Each DDL commits on its own; a run that
# dies between two of them is completed by the next (``_finish_interrupted_widening``).
WIDEN_ADD_SQL = "ALTER TABLE {table} ADD COLUMN {scratch} {type}"
WIDEN_COPY_SQL = "UPDATE {table} SET {scratch} = {column}"
WIDEN_DROP_SQL = "ALTER TABLE {table} DROP COLUMN {column}"
WIDEN_RENAME_SQL = "ALTER TABLE {table} RENAME COLUMN {scratch} TO {column}"
WIDENING_SUFFIX = "__widening"
BEGIN_SQL = "BEGIN"
DELETE_PARTITION_SQL = "DELETE FROM {table} WHERE partition_date = %(partition_date)s"
# FORCE = TRUE: idempotency comes from the DELETE above, not from the 64-day load metadata (see the
# module docstring). No ON_ERROR: the default ABORT_STATEMENT fails the COPY on the first bad row,
# which rolls back the DELETE too, so the day keeps its previous rows.
COPY_PARTITION_SQL = (
    "COPY INTO {table} FROM @{stage}/{namespace}/dt={dt}/ FILES = ({files}) "
    "FILE_FORMAT = (TYPE = 'PARQUET') MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE FORCE = TRUE"
)
COUNT_PARTITION_SQL = "SELECT COUNT(*) FROM {table} WHERE partition_date = %(partition_date)s"
COMMIT_SQL = "COMMIT"
ROLLBACK_SQL = "ROLLBACK"

# A stage or integration name, optionally qualified (db.schema.stage).
_QUALIFIED_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*){0,2}$")


def snowflake_type(data_type: pa.DataType) -> str:
    """The Snowflake column type for an Arrow type (``contracts.schemas.SNOWFLAKE_TYPES``: TIMESTAMP_NTZ in UTC)."""
    return sql_type(data_type, SNOWFLAKE_TYPES)


def _check_qualified_name(name: str, what: str) -> str:
    if not _QUALIFIED_NAME.match(name):
        raise ValueError(f"{what} {name!r} is not a plain (optionally qualified) Snowflake identifier")
    return name


class SnowflakeWarehouse:
    """Snowflake as the warehouse; files never pass through this process (COPY reads S3 directly)."""

    def __init__(
        self,
        resource: SnowflakeResource,
        stage: str,
        storage_integration: str | None,
        lake_bucket_url: str,
    ) -> None:
        if resource.connector is not None:
            raise ValueError("SnowflakeWarehouse needs the snowflake.connector connection (connector unset)")
        if resource.paramstyle not in (None, "pyformat"):
            # The templates bind values as %(name)s, the connector's default client-side style.
            raise ValueError(f"SnowflakeWarehouse binds pyformat parameters, not {resource.paramstyle!r}")
        if not lake_bucket_url.startswith("s3://") or "'" in lake_bucket_url:
            raise ValueError(f"Snowflake reads the lake from S3; got lake URL {lake_bucket_url!r}")
        self.resource = resource
        self.stage = _check_qualified_name(stage, "stage")
        self.storage_integration = (
            _check_qualified_name(storage_integration, "storage integration") if storage_integration else None
        )
        self.stage_url = lake_bucket_url.rstrip("/") + "/staging/"
        self._stage_ready = False

    @property
    def dialect(self) -> Dialect:
        return "snowflake"

    @contextmanager
    def _cursor(self) -> Iterator[Any]:
        # One connection per operation, and only one: with key-pair auth every connection is a login.
        with self.resource.get_connection() as conn:
            yield conn.cursor()

    @contextmanager
    def _transaction(self, cursor: Any) -> Iterator[Any]:
        """BEGIN ... COMMIT on ``cursor``'s session; any failure issues ROLLBACK before re-raising."""
        cursor.execute(BEGIN_SQL)
        try:
            yield cursor
        except BaseException:
            cursor.execute(ROLLBACK_SQL)
            raise
        cursor.execute(COMMIT_SQL)

    def create_stage_sql(self) -> str:
        integration = (
            STORAGE_INTEGRATION_CLAUSE.format(storage_integration=self.storage_integration)
            if self.storage_integration
            else ""
        )
        return CREATE_STAGE_SQL.format(stage=self.stage, url=self.stage_url, storage_integration=integration)

    def ensure_stage(self) -> None:
        """Create the external stage over staging/ (once per instance; IF NOT EXISTS keeps it idempotent)."""
        with self._cursor() as cursor:
            self._ensure_stage(cursor)

    def _ensure_stage(self, cursor: Any) -> None:
        if not self._stage_ready:
            cursor.execute(self.create_stage_sql())
            self._stage_ready = True

    def ensure_table(self, table: str, schema: pa.Schema) -> list[str]:
        with self._cursor() as cursor:
            return self._ensure_table(cursor, table, schema)

    def _ensure_table(self, cursor: Any, table: str, schema: pa.Schema) -> list[str]:
        # Snowflake commits DDL implicitly, so schema changes run before (never inside) a load's
        # transaction; adding a nullable column or widening a decimal is harmless if the load then fails.
        check_identifier(table, "table")
        _finish_interrupted_widening(cursor, table)

        def widen(arrow_field: pa.Field, type_name: str) -> None:
            names = {"table": table, "column": arrow_field.name, "scratch": arrow_field.name + WIDENING_SUFFIX}
            for template in (WIDEN_ADD_SQL, WIDEN_COPY_SQL, WIDEN_DROP_SQL, WIDEN_RENAME_SQL):
                cursor.execute(template.format(type=type_name, **names))

        return create_or_evolve_table(
            table,
            schema,
            SNOWFLAKE_TYPES,
            table_columns=lambda: _table_columns(cursor, table),
            execute=cursor.execute,
            decimal_columns=lambda: _decimal_columns(cursor, table),
            widen=widen,
        )

    def copy_partition_sql(self, table: str, namespace: str, partition_date: date, file_names: list[str]) -> str:
        return COPY_PARTITION_SQL.format(
            table=table,
            stage=self.stage,
            namespace=namespace,
            dt=partition_date.isoformat(),
            files=", ".join(f"'{name}'" for name in file_names),
        )

    def replace_partition(
        self, table: str, schema: pa.Schema, partition_date: date, staging_keys: list[str]
    ) -> LoadResult:
        partition = partition_load(table, schema, partition_date, staging_keys)
        bind = {"partition_date": partition_date}
        copy_sql = self.copy_partition_sql(table, partition.namespace, partition_date, partition.file_names)
        with self._cursor() as cursor:
            self._ensure_stage(cursor)
            added = self._ensure_table(cursor, table, schema)
            with self._transaction(cursor):
                cursor.execute(DELETE_PARTITION_SQL.format(table=table), bind)
                rows_deleted = int(cursor.fetchone()[0])
                try:
                    cursor.execute(copy_sql)
                except Exception as error:  # the connector's errors: a missing file, a type mismatch...
                    raise WarehouseLoadError(f"{table} dt={partition_date}: COPY failed: {error}") from error
                files = parse_copy_results(cursor.description, cursor.fetchall(), partition.keys)
                rows_loaded = sum(f.rows_loaded for f in files)
                cursor.execute(COUNT_PARTITION_SQL.format(table=table), bind)
                in_partition = int(cursor.fetchone()[0])
                check_rows_in_partition(table, partition_date, rows_loaded, in_partition, verb="copied")
        return LoadResult(table, partition_date, rows_loaded, rows_deleted, files, added)

    def delete_partition(self, table: str, partition_date: date) -> int:
        check_identifier(table, "table")
        with self._cursor() as cursor:
            if not _table_columns(cursor, table):
                return 0
            # A single statement is its own transaction (autocommit); no BEGIN needed.
            cursor.execute(DELETE_PARTITION_SQL.format(table=table), {"partition_date": partition_date})
            return int(cursor.fetchone()[0])

    def query(self, sql: str, params: Params | None = None) -> list[tuple]:
        with self._cursor() as cursor:
            cursor.execute(sql, params)
            return [tuple(row) for row in cursor.fetchall()]

    def execute_script(self, sql: str) -> None:
        with self.resource.get_connection() as conn:
            conn.execute_string(sql)

    def execute_in_transaction(self, statements: Sequence[tuple[str, Params | None]]) -> list[list[tuple]]:
        results: list[list[tuple]] = []
        with self._cursor() as cursor, self._transaction(cursor):
            for sql, params in statements:
                cursor.execute(sql, params)
                results.append([tuple(row) for row in cursor.fetchall()])
        return results


def _table_columns(cursor: Any, table: str) -> list[str]:
    """The table's columns (upper case, as Snowflake stores unquoted names); empty when it does not exist."""
    cursor.execute(TABLE_COLUMNS_SQL, {"table": table.upper()})
    return [row[0] for row in cursor.fetchall()]


def _decimal_columns(cursor: Any, table: str) -> dict[str, tuple[int, int]]:
    cursor.execute(DECIMAL_COLUMNS_SQL, {"table": table.upper()})
    return {str(name).lower(): (int(precision), int(scale)) for name, precision, scale in cursor.fetchall()}


def _finish_interrupted_widening(cursor: Any, table: str) -> None:
    """Complete a widening a crash cut short: the scratch column still there means it did not finish.

    With the original column still present the copy may be partial: drop the scratch and widen again.
    Without it the values are all in the scratch column: give it the original name.
    """
    columns = {str(c).lower() for c in _table_columns(cursor, table)}
    for scratch in sorted(c for c in columns if c.endswith(WIDENING_SUFFIX)):
        column = scratch.removesuffix(WIDENING_SUFFIX)
        names = {"table": table, "column": check_identifier(column, "column"), "scratch": scratch}
        if column in columns:
            cursor.execute(WIDEN_DROP_SQL.format(table=table, column=scratch))
        else:
            cursor.execute(WIDEN_RENAME_SQL.format(**names))


def parse_copy_results(
    description: Sequence[Any], rows: Sequence[Sequence[Any]], keys: list[str]
) -> list[FileLoadResult]:
    """Map COPY's result rows (one per file) back to staging keys; anything but LOADED is a failure.

    COPY reports ``file`` as the full URL for an external stage; staging file names are unique within
    a partition, so the last path segment identifies the key. A file missing from the results (or a
    partial load) raises, which rolls the transaction back: the partition must be exactly these files.
    """
    names = [column[0].lower() for column in description]
    by_name = {key.rsplit("/", 1)[-1]: key for key in keys}
    results: dict[str, FileLoadResult] = {}
    for row in rows:
        record = dict(zip(names, row, strict=True))
        if "file" not in record:
            # e.g. "Copy executed with 0 files processed.": nothing matched the FILES list.
            raise WarehouseLoadError(f"COPY loaded no files: {record}")
        key = by_name.get(str(record["file"]).rsplit("/", 1)[-1])
        if key is None:
            raise WarehouseLoadError(f"COPY reported a file that was not requested: {record['file']}")
        results[key] = FileLoadResult(
            key=key,
            status=str(record["status"]),
            rows_parsed=int(record["rows_parsed"] or 0),
            rows_loaded=int(record["rows_loaded"] or 0),
            errors_seen=int(record["errors_seen"] or 0),
            first_error=record.get("first_error"),
        )
    problems = [r for r in results.values() if r.status != "LOADED" or r.errors_seen]
    missing = [key for key in keys if key not in results]
    if problems or missing:
        raise WarehouseLoadError(f"COPY did not load every file: failed={problems} missing={missing}")
    return [results[key] for key in keys]
