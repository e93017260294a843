"""Every Arrow schema, column list and column type the zones derive from a contract, derived here once.

Why one module: the clean writer, the staging build, the pandera models, the warehouse backends and the
mart each used to spell the lineage columns, the E.164 pattern, the staging columns or the Arrow-to-SQL
types themselves, and the copies could drift (a lineage column added in clean but not checked, a type
mapped one way in staging's SQL and another in the warehouse). The contract (``contracts.model``) says
what a dataset is; this module says what every zone stores for it; the zones only read from here.

- Lineage: the columns every clean and staging row carries after the contract's own (``LINEAGE_FIELDS``),
  and ``RECORD_DATE`` of staging snapshots.
- ``clean_schema`` / ``staging_schema``: a dataset's clean and staging zone columns; ``QUARANTINE_SCHEMA``:
  the rows clean sets aside, with the rule each broke.
- ``personal_columns``: which staging columns hold personal data (masked before they leave staging).
- ``E164_PATTERN``: what a ``Kind.PHONE`` value is after standardization (checked by clean and by pandera).
- ``TypeNames`` and its instances: the SQL column type of every Arrow type a zone schema may hold, for the
  DuckDB and Snowflake warehouses and for the DuckDB that builds staging inside the lake.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import pyarrow as pa

from customer360.contracts import DATASETS
from customer360.contracts.model import Dataset, Field

# --- Lineage ---------------------------------------------------------------------------------------

PARTITION_COLUMN = "partition_date"  # the business day (the partition) a row belongs to
SOURCE_FILE = "_source_file"  # the archived file a row was read from
SOURCE_LINE = "_source_line"  # its line (CSV) or record (JSON Lines) number there, from 1
CONTRACT_VERSION = "_contract_version"  # the contract version the file was validated against
RESCUED_DATA = "_rescued_data"  # fields the contract does not know, as a JSON object
RECORD_DATE = "_record_date"  # staging snapshots: the business day the winning record arrived on

LINEAGE_FIELDS: tuple[pa.Field, ...] = (
    pa.field(PARTITION_COLUMN, pa.date32(), nullable=False),
    pa.field(SOURCE_FILE, pa.string(), nullable=False),
    pa.field(SOURCE_LINE, pa.int64(), nullable=False),
    pa.field(CONTRACT_VERSION, pa.string(), nullable=False),
    pa.field(RESCUED_DATA, pa.string()),
)
"""What every clean row carries after the contract's columns, in this order."""

SOURCE_POSITION = (SOURCE_FILE, SOURCE_LINE)
"""What traces a row to the line of the file it came from (samples, reports, the default order)."""

QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field(PARTITION_COLUMN, pa.date32(), nullable=False),
        pa.field(SOURCE_FILE, pa.string(), nullable=False),
        pa.field(SOURCE_LINE, pa.int64(), nullable=False),
        pa.field("rule", pa.string(), nullable=False),
        pa.field("column", pa.string()),
        pa.field("value", pa.string()),
        pa.field("violations", pa.int32(), nullable=False),
        pa.field("record", pa.string(), nullable=False),
        pa.field(CONTRACT_VERSION, pa.string(), nullable=False),
    ]
)
"""The rows clean sets aside: where each came from, the first rule it broke, and the raw record."""

E164_PATTERN = r"^\+[1-9][0-9]{6,14}$"
"""A ``Kind.PHONE`` value after standardization: '+', a country code that does not start with 0, 7-15 digits."""


# --- Zone schemas ----------------------------------------------------------------------------------


def clean_schema(dataset: Dataset) -> pa.Schema:
    """The clean zone's schema: standardized contract columns, then lineage."""
    return pa.schema([*dataset.typed_schema, *LINEAGE_FIELDS])


def joined_fields(dataset: Dataset, datasets: Mapping[str, Dataset] = DATASETS) -> list[pa.Field]:
    """The columns the dataset's ``staging_joins`` bring into its staging table (nullable: no match is NULL)."""
    return [
        pa.field(alias, datasets[join.dataset].field(column).arrow_type)
        for join in dataset.staging_joins
        for column, alias in join.columns
    ]


def staging_schema(dataset: Dataset, datasets: Mapping[str, Dataset] = DATASETS) -> pa.Schema:
    """The columns a staging partition has, derived from the contract (used before any file exists).

    The day first, then the clean columns, the snapshot's ``RECORD_DATE``, and the joined columns a
    column of the dataset does not already name.
    """
    fields = [LINEAGE_FIELDS[0]]
    fields += [f for f in clean_schema(dataset) if f.name != PARTITION_COLUMN]
    if dataset.snapshot:
        fields.append(pa.field(RECORD_DATE, pa.date32()))
    for joined in joined_fields(dataset, datasets):
        if joined.name not in {f.name for f in fields}:
            fields.append(joined)
    return pa.schema(fields)


def personal_columns(dataset: Dataset, datasets: Mapping[str, Dataset] = DATASETS) -> dict[str, Field]:
    """The dataset's staging columns that hold personal data, each with the contract field marking it so.

    Its own fields marked ``personal``, then the columns its ``staging_joins`` bring from a personal field
    of another dataset, in staging column order. What must be masked before anything leaves staging.
    """
    found = {f.name: f for f in dataset.fields if f.personal}
    for join in dataset.staging_joins:
        for column, alias in join.columns:
            source = datasets[join.dataset].field(column)
            if source.personal and alias not in found and alias not in {f.name for f in dataset.fields}:
                found[alias] = source
    return found


# --- Arrow types as SQL column types ---------------------------------------------------------------

_ARROW_INTEGERS = (pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint16(), pa.uint32(), pa.uint64())


@dataclass(frozen=True)
class TypeNames:
    """One SQL engine's column type for each kind of Arrow type a zone schema may declare.

    Each instance below sits next to the reasons for its choices (timestamps above all).
    """

    engine: str  # in the error for an unmapped type: "no <engine> mapping for Arrow type ..."
    boolean: str
    integers: Mapping[pa.DataType, str]  # every Arrow integer type, signed and unsigned
    float32: str
    floating: str  # the other floating types (float64, float16)
    decimal: str  # formatted with ``precision`` and ``scale``
    string: str  # string and large_string
    date: str
    timestamp: str
    binary: str  # binary and large_binary

    @staticmethod
    def every_integer(name: str) -> dict[pa.DataType, str]:
        """``integers`` for a dialect with one integer type of any width."""
        return dict.fromkeys(_ARROW_INTEGERS, name)


def sql_type(data_type: pa.DataType, names: TypeNames) -> str:
    """The column type ``names`` gives an Arrow type; TypeError for a type no engine maps."""
    if pa.types.is_boolean(data_type):
        return names.boolean
    if pa.types.is_integer(data_type):
        return names.integers[data_type]
    if pa.types.is_float32(data_type):
        return names.float32
    if pa.types.is_floating(data_type):
        return names.floating
    if pa.types.is_decimal(data_type):
        return names.decimal.format(precision=data_type.precision, scale=data_type.scale)
    if pa.types.is_string(data_type) or pa.types.is_large_string(data_type):
        return names.string
    if pa.types.is_date(data_type):
        return names.date
    if pa.types.is_timestamp(data_type):
        return names.timestamp
    if pa.types.is_binary(data_type) or pa.types.is_large_binary(data_type):
        return names.binary
    raise TypeError(f"no {names.engine} mapping for Arrow type {data_type}")


# The DuckDB warehouse. Timestamps become TIMESTAMP holding UTC wall-clock time (like TIMESTAMP_NTZ on
# Snowflake) so that both backends return the same values and date arithmetic never depends on a session
# time zone.
DUCKDB_TYPES = TypeNames(
    engine="DuckDB",
    boolean="BOOLEAN",
    integers={
        pa.int8(): "TINYINT",
        pa.int16(): "SMALLINT",
        pa.int32(): "INTEGER",
        pa.int64(): "BIGINT",
        pa.uint8(): "UTINYINT",
        pa.uint16(): "USMALLINT",
        pa.uint32(): "UINTEGER",
        pa.uint64(): "UBIGINT",
    },
    float32="FLOAT",
    floating="DOUBLE",
    decimal="DECIMAL({precision},{scale})",
    string="VARCHAR",
    date="DATE",
    timestamp="TIMESTAMP",  # UTC wall-clock time, see above
    binary="BLOB",
)

# The DuckDB that builds staging inside the lake reads the zones' Parquet, whose UTC timestamps it types
# TIMESTAMPTZ; a typed NULL standing in for a column it would have read (a staging join without the other
# side's snapshot) must have that same type, or the union of both cases would differ by backend and day.
DUCKDB_LAKE_TYPES = replace(DUCKDB_TYPES, engine="DuckDB (staging)", timestamp="TIMESTAMPTZ")

# The Snowflake warehouse. Timestamps are TIMESTAMP_NTZ holding UTC. Why not TIMESTAMP_TZ: Parquet stores
# instants without an offset, so Snowflake would stamp each value with the loading session's TIMEZONE; the
# same event could carry different offsets depending on who loaded it, and DATE(event_ts) would shift with
# it. The contract says every timestamp is UTC, so NTZ-in-UTC is exact, deterministic, and behaves like
# DuckDB's TIMESTAMP in the mart SQL.
SNOWFLAKE_TYPES = TypeNames(
    engine="Snowflake",
    boolean="BOOLEAN",
    integers=TypeNames.every_integer("NUMBER(38,0)"),
    float32="FLOAT",
    floating="FLOAT",
    decimal="NUMBER({precision},{scale})",
    string="VARCHAR",
    date="DATE",
    timestamp="TIMESTAMP_NTZ",  # in UTC, see above
    binary="BINARY",
)
