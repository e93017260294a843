"""What the pipeline needs from a warehouse, whichever engine runs it (DuckDB embedded, or Snowflake).

Why a protocol with exactly these operations: staging is the only contract the warehouse sees, and a
staging partition (one namespace, one ``dt=``) is the unit of loading. Every load is "replace this
day's rows with exactly these files" in one transaction, so a replay never duplicates and never loses
rows, and a corrected day replaces its rows. Both backends must behave the same way and are tested the
same way; the zone code and the Dagster assets only talk to this protocol.

Tables are created and evolved from the Arrow schemas the datasets declare (no column lists here; the
Arrow-to-SQL types of each engine are ``contracts.schemas``' ``TypeNames``):
a new nullable field becomes ``ADD COLUMN`` (old rows read NULL); a decimal column declared with more
places or more whole digits (a contract that now states 4 places where the table holds 2) is widened in
place, every existing value kept exactly; anything else that would rewrite existing rows (a new NOT NULL
column, a decimal narrowed) is refused rather than guessed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal, Protocol, runtime_checkable

import pyarrow as pa

from customer360.contracts.schemas import PARTITION_COLUMN, TypeNames, sql_type

Dialect = Literal["duckdb", "snowflake"]

# Positional (list) or named (dict) bind parameters. The placeholder syntax is the backend's own:
# DuckDB uses ``?`` / ``$name``, Snowflake's connector (pyformat) ``%s`` / ``%(name)s``.
Params = Sequence[Any] | Mapping[str, Any]

# Unquoted, lower snake_case identifiers only. Why: Snowflake folds unquoted names to upper case and
# MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE matches them to the Parquet names, while DuckDB is case
# insensitive; quoting would make Snowflake columns case sensitive and every query would need quotes.
# Refusing anything else also keeps names interpolated into DDL safe.
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")

# staging/<namespace>/dt=YYYY-MM-DD/<file>.parquet, as written by the staging zone.
_STAGING_KEY = re.compile(
    r"^staging/(?P<namespace>[a-z0-9_]+)/dt=(?P<dt>\d{4}-\d{2}-\d{2})/(?P<file>[A-Za-z0-9_.=-]+\.parquet)$"
)

# The table DDL both backends issue (identifiers validated before formatting). IF NOT EXISTS: two runs
# creating or evolving the same table, one after the other or at once, must both succeed.
CREATE_TABLE_SQL = "CREATE TABLE IF NOT EXISTS {table} (\n    {columns}\n)"
ADD_COLUMN_SQL = "ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} {type}"


class WarehouseError(Exception):
    """Base class for warehouse failures the caller should surface (not retry blindly)."""


class SchemaEvolutionError(WarehouseError):
    """The declared schema cannot be applied to the existing table without rewriting its rows."""


class WarehouseLoadError(WarehouseError):
    """A partition load failed; its transaction was rolled back, the previous rows are intact."""


@dataclass(frozen=True)
class FileLoadResult:
    """One staging file's outcome, as Snowflake's COPY reports it (DuckDB computes the same)."""

    key: str
    status: str
    rows_parsed: int
    rows_loaded: int
    errors_seen: int
    first_error: str | None


@dataclass(frozen=True)
class LoadResult:
    """What one ``replace_partition`` did; becomes materialization metadata and feeds a check."""

    table: str
    partition_date: date
    rows_loaded: int
    rows_deleted: int
    files: list[FileLoadResult] = field(default_factory=list)
    added_columns: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class StagingPartition:
    """The validated file list of one staging partition."""

    namespace: str
    partition_date: date
    keys: list[str]
    file_names: list[str]


@runtime_checkable
class Warehouse(Protocol):
    """A SQL warehouse loaded from staging. Implementations: DuckDBWarehouse, SnowflakeWarehouse."""

    @property
    def dialect(self) -> Dialect:
        """Which SQL dialect ``query`` / ``execute_script`` speak (mart SQL is kept per dialect)."""
        ...

    def ensure_table(self, table: str, schema: pa.Schema) -> list[str]:
        """Create ``table`` from ``schema`` if missing, else add its new nullable columns.

        Returns the columns added to an existing table (empty when created or already current).
        """
        ...

    def replace_partition(
        self, table: str, schema: pa.Schema, partition_date: date, staging_keys: list[str]
    ) -> LoadResult:
        """In one transaction: delete ``partition_date``'s rows, load exactly ``staging_keys``."""
        ...

    def delete_partition(self, table: str, partition_date: date) -> int:
        """Remove a day's rows (its staging is now empty); 0 when the table does not exist yet."""
        ...

    def query(self, sql: str, params: Params | None = None) -> list[tuple]:
        """Run one statement and return its rows (an empty list for statements without rows)."""
        ...

    def execute_script(self, sql: str) -> None:
        """Run several ';'-separated statements without parameters (DDL, maintenance)."""
        ...

    def execute_in_transaction(self, statements: Sequence[tuple[str, Params | None]]) -> list[list[tuple]]:
        """Run statements in one transaction (all or nothing); returns each statement's rows."""
        ...


def check_identifier(name: str, what: str = "identifier") -> str:
    """``name`` if it is a plain lower snake_case identifier, else ValueError."""
    if not _IDENTIFIER.match(name):
        raise ValueError(f"{what} {name!r} must be lower snake_case ([a-z_][a-z0-9_]*)")
    return name


_DAY_PARAM: dict[Dialect, str] = {"duckdb": "CAST($day AS DATE)", "snowflake": "CAST(%(day)s AS DATE)"}


def sample_rows(
    warehouse: Warehouse, table: str, day_column: str, day: date, columns: Sequence[str], limit: int = 5
) -> list[tuple]:
    """A few rows of one day of a table, in ``columns`` order (the UI's preview of a warehouse table)."""
    names = ", ".join(check_identifier(c, "column") for c in columns)
    where = f"{check_identifier(day_column, 'column')} = {_DAY_PARAM[warehouse.dialect]}"
    return warehouse.query(
        f"SELECT {names} FROM {check_identifier(table, 'table')} WHERE {where} LIMIT {int(limit)}", {"day": day}
    )


def check_schema(schema: pa.Schema, *, partitioned: bool = False) -> None:
    """Columns must be nameable without quoting; a table loaded by day needs its partition column."""
    names = [check_identifier(f.name, "column") for f in schema]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise ValueError(f"duplicate columns in schema: {sorted(duplicates)}")
    if partitioned and PARTITION_COLUMN not in names:
        raise ValueError(f"schema has no {PARTITION_COLUMN!r} column; partitions could not be replaced")


def decimals_to_widen(table: str, schema: pa.Schema, existing: Mapping[str, tuple[int, int]]) -> list[pa.Field]:
    """Decimal fields the table holds narrower than ``schema`` declares: (precision, scale) per column.

    Widening keeps every existing value exactly (more places, at least as many whole digits); a change
    that could not (fewer places or fewer whole digits) is refused, never rounded.
    """
    current = {name.lower(): size for name, size in existing.items()}
    widen = []
    for arrow_field in schema:
        size = current.get(arrow_field.name.lower())
        if size is None or not pa.types.is_decimal(arrow_field.type):
            continue
        precision, scale = size
        wanted = arrow_field.type
        if (precision, scale) == (wanted.precision, wanted.scale):
            continue
        if wanted.scale < scale or wanted.precision - wanted.scale < precision - scale:
            raise SchemaEvolutionError(
                f"{table}.{arrow_field.name} holds DECIMAL({precision},{scale}); the schema declares "
                f"DECIMAL({wanted.precision},{wanted.scale}), which cannot hold every existing value. "
                "Migrate the table explicitly (nothing is rounded)."
            )
        widen.append(arrow_field)
    return widen


def new_fields(schema: pa.Schema, existing_columns: Iterable[str]) -> list[pa.Field]:
    """The fields of ``schema`` the table lacks, refusing ones that cannot be added in place.

    Columns the table has but the schema dropped are kept: dropping would destroy history, and
    COPY ... MATCH_BY_COLUMN_NAME (like the DuckDB load) leaves them NULL for new rows.
    """
    existing = {c.lower() for c in existing_columns}
    missing = [f for f in schema if f.name.lower() not in existing]
    not_nullable = [f.name for f in missing if not f.nullable]
    if not_nullable:
        raise SchemaEvolutionError(
            f"new columns {not_nullable} are declared NOT NULL; existing rows have no value for them. "
            "Declare them nullable (added with NULL for old rows) or migrate the table explicitly."
        )
    return missing


def column_definition(arrow_field: pa.Field, type_name: str) -> str:
    """``name TYPE [NOT NULL]``: the schema's nullability is part of the staging contract."""
    return f"{arrow_field.name} {type_name}" + ("" if arrow_field.nullable else " NOT NULL")


def create_or_evolve_table(
    table: str,
    schema: pa.Schema,
    names: TypeNames,
    *,
    table_columns: Callable[[], list[str]],
    execute: Callable[[str], object],
    decimal_columns: Callable[[], Mapping[str, tuple[int, int]]],
    widen: Callable[[pa.Field, str], object],
) -> list[str]:
    """``Warehouse.ensure_table`` over a backend's own column lookups and statement execution.

    ``table_columns`` returns the existing table's columns (empty when there is no table); ``execute``
    runs one DDL statement; ``decimal_columns`` gives each decimal column's (precision, scale) and
    ``widen(field, type)`` widens one (each engine has its own way). Returns the columns added to or
    widened in an existing table.
    """
    check_identifier(table, "table")
    check_schema(schema)
    existing = table_columns()
    if not existing:
        columns = ",\n    ".join(column_definition(f, sql_type(f.type, names)) for f in schema)
        execute(CREATE_TABLE_SQL.format(table=table, columns=columns))
        return []
    widened = decimals_to_widen(table, schema, decimal_columns())
    added = new_fields(schema, existing)
    for arrow_field in widened:
        widen(arrow_field, sql_type(arrow_field.type, names))
    for arrow_field in added:
        execute(ADD_COLUMN_SQL.format(table=table, column=arrow_field.name, type=sql_type(arrow_field.type, names)))
    return [f.name for f in added] + [f.name for f in widened]


def check_rows_in_partition(
    table: str, partition_date: date, rows_loaded: int, in_partition: int, *, verb: str = "loaded"
) -> None:
    """Every row a load brought in must carry the partition's date, or WarehouseLoadError (rolls back).

    Why: rows for other days would survive the next replay's delete and duplicate them.
    """
    if in_partition != rows_loaded:
        raise WarehouseLoadError(
            f"{table}: {rows_loaded} rows {verb} from dt={partition_date} but {in_partition} carry "
            f"partition_date={partition_date}; staging files hold rows of other days"
        )


def partition_load(
    table: str, schema: pa.Schema, partition_date: date, staging_keys: Sequence[str]
) -> StagingPartition:
    """Validate a ``replace_partition`` request before it touches the warehouse; its staging partition."""
    check_identifier(table, "table")
    check_schema(schema, partitioned=True)
    return staging_partition(staging_keys, partition_date)


def staging_partition(staging_keys: Sequence[str], partition_date: date) -> StagingPartition:
    """Validate that the keys are the files of one staging partition for ``partition_date``.

    Why refuse an empty list: "replace the day with no files" would silently wipe a loaded day when an
    upstream step found nothing; a genuinely empty day is a zero-row Parquet file.
    """
    if not staging_keys:
        raise ValueError(f"no staging files given for {partition_date}; refusing to empty the partition")
    namespaces: set[str] = set()
    names: list[str] = []
    for key in staging_keys:
        match = _STAGING_KEY.match(key)
        if not match:
            raise ValueError(f"not a staging file key (staging/<namespace>/dt=YYYY-MM-DD/*.parquet): {key!r}")
        if match["dt"] != partition_date.isoformat():
            raise ValueError(f"{key!r} is not in partition dt={partition_date.isoformat()}")
        namespaces.add(match["namespace"])
        names.append(match["file"])
    if len(namespaces) != 1:
        raise ValueError(f"staging files span several namespaces: {sorted(namespaces)}")
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate staging files: {sorted(staging_keys)}")
    return StagingPartition(namespaces.pop(), partition_date, list(staging_keys), names)
