"""The vocabulary a dataset contract is written in.

Why declarative: every zone step (gate validation, typing and standardization in clean, the pandera
models behind the asset checks, the staging and warehouse schemas) is generated from one declaration
per dataset. Adding a dataset or a field is a change in one place: its contract module.

A field names what the source sends (``source_name``, case-sensitive, as in the raw landing contract)
and what the lake calls it after standardization (``name``, snake_case). Its ``kind`` says how a raw
string becomes a typed value; ``rules`` say which typed values are acceptable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum

import pyarrow as pa


class Kind(StrEnum):
    """How a trimmed raw string becomes a typed value."""

    TEXT = "text"  # kept as a string
    LOWER_TEXT = "lower_text"  # kept as a string, lowercased (emails)
    PHONE = "phone"  # normalized to E.164 (+ and digits), else a rule violation
    INT = "int"
    DECIMAL = "decimal"
    FLAG = "flag"  # two source spellings mapped to a boolean (Yes/No, 0/1, true/false)
    STATE = "state"  # a closed set of source spellings mapped to canonical snake_case states
    TIMESTAMP = "timestamp"  # ISO-8601 with an offset, stored in UTC
    DATE = "date"


@dataclass(frozen=True)
class Field:
    """One field of a dataset as the source sends it and as the lake stores it."""

    source_name: str
    kind: Kind
    name: str = ""
    required: bool = False  # non-empty in every row
    optional: bool = False  # may be absent from the header (newer source releases)
    pattern: str | None = None  # full-match regular expression on the trimmed value
    true_value: str | None = None  # FLAG: source spelling of True
    false_value: str | None = None  # FLAG: source spelling of False
    states: tuple[str, ...] = ()  # STATE: accepted source spellings, in order
    minimum: Decimal | None = None  # inclusive lower bound for INT / DECIMAL
    precision: int = 12  # DECIMAL
    scale: int = 2  # DECIMAL: more fractional digits than this is a type violation
    unique_in_file: bool = False
    personal: bool = False  # personal data: masked before it leaves staging
    description: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", snake_case(self.source_name))
        if self.kind is Kind.FLAG and (self.true_value is None or self.false_value is None):
            raise ValueError(f"flag field {self.source_name} needs true_value and false_value")
        if self.kind is Kind.STATE and not self.states:
            raise ValueError(f"state field {self.source_name} needs its states")
        if self.required and self.optional:
            raise ValueError(f"field {self.source_name} cannot be both required and optional")

    @property
    def arrow_type(self) -> pa.DataType:
        return ARROW_TYPES[self.kind](self)

    @property
    def full_pattern(self) -> str | None:
        """``pattern`` anchored at both ends: what a whole trimmed value must match (None without one)."""
        return f"^(?:{self.pattern})$" if self.pattern else None

    def canonical_state(self, source_value: str) -> str:
        return snake_case(source_value)

    @property
    def column_description(self) -> str:
        """What the column holds, from the contract, for the UI's column schemas."""
        what = [self.description] if self.description else []
        same = self.source_name == self.name
        what.append("source field of the same name" if same else f"source field `{self.source_name}`")
        what.append(_KIND_TEXT[self.kind])
        if self.kind is Kind.FLAG:
            what.append(f"{self.true_value} is true, {self.false_value} is false")
        if self.kind is Kind.STATE:
            what.append("one of " + ", ".join(self.states))
        if self.kind is Kind.DECIMAL:
            what.append(f"up to {self.scale} decimal places")
        if self.minimum is not None:
            what.append(f"at least {self.minimum}")
        if self.pattern:
            what.append(f"pattern `{self.pattern}`")
        what.append("required" if self.required else "optional in the header" if self.optional else "may be empty")
        if self.unique_in_file:
            what.append("unique per file")
        if self.personal:
            what.append("personal data")
        return "; ".join(what)

    @property
    def allowed_values(self) -> tuple[str, ...] | None:
        """Source spellings accepted, for kinds with a closed set."""
        if self.kind is Kind.FLAG:
            return (str(self.true_value), str(self.false_value))
        if self.kind is Kind.STATE:
            return self.states
        return None


_KIND_TEXT = {
    Kind.TEXT: "text",
    Kind.LOWER_TEXT: "text, lower-cased",
    Kind.PHONE: "phone number in E.164",
    Kind.INT: "integer",
    Kind.DECIMAL: "decimal",
    Kind.FLAG: "flag",
    Kind.STATE: "state, snake_case",
    Kind.TIMESTAMP: "timestamp, UTC",
    Kind.DATE: "date",
}

ARROW_TYPES = {
    Kind.TEXT: lambda f: pa.string(),
    Kind.LOWER_TEXT: lambda f: pa.string(),
    Kind.PHONE: lambda f: pa.string(),
    Kind.INT: lambda f: pa.int64(),
    Kind.DECIMAL: lambda f: pa.decimal128(f.precision, f.scale),
    Kind.FLAG: lambda f: pa.bool_(),
    Kind.STATE: lambda f: pa.string(),
    Kind.TIMESTAMP: lambda f: pa.timestamp("us", tz="UTC"),
    Kind.DATE: lambda f: pa.date32(),
}


@dataclass(frozen=True)
class RowRule:
    """A rule across fields of one row, evaluated on typed columns.

    ``when_column`` with ``when_in`` restricts the rule to rows whose ``when_column`` (a canonical value) is
    one of ``when_in``; with ``when_not_in``, to rows where it is present and none of ``when_not_in``
    (without ``when_column`` the rule applies to every row). ``require_null`` names columns that must be
    null in those rows; ``not_before`` = (later, earlier) requires ``later >= earlier`` where both are present.
    """

    name: str
    description: str
    when_column: str | None = None
    when_in: tuple[str, ...] = ()
    when_not_in: tuple[str, ...] = ()
    require_null: tuple[str, ...] = ()
    not_before: tuple[str, str] | None = None  # (later column, earlier column)


@dataclass(frozen=True)
class StagingJoin:
    """Staging enriches a dataset with columns of another dataset's staging snapshot of the same day."""

    dataset: str  # the other dataset's name; its staging snapshot of the same day is joined
    on: tuple[str, ...]
    columns: tuple[tuple[str, str], ...]  # (column in the other snapshot, name in this staging table)


@dataclass(frozen=True)
class ExpectedDelivery:
    """What a normal day of files looks like, so a missing or thin day is noticed (``checks/deliveries.py``).

    A dataset without one (``Dataset.delivery = None``) delivers only on change and is never judged.
    """

    files: int  # accepted files a complete day has
    due_after_day: timedelta  # every file of day D is due by the end of D (00:00 UTC of D+1) plus this
    hourly: bool = False  # one file per UTC hour: a late day names its missing hours
    # The records' timestamp field whose hour says which hour a file holds, when its name does not say it.
    hour_field: str | None = None
    # A regular expression with a group named ``hour`` that finds a file's hour in its name; when None, the
    # tolerant built-in reading applies (see ``customer360.defs.deliveries.hour_from_name``).
    hour_pattern: str | None = None
    baseline_days: int = 14  # the trailing window a day's volume is compared with ...
    same_weekday: bool = True  # ... on the same weekday only (with 14 days: the two previous ones)
    suspicious_below: float = 0.5  # a day under this share of the baseline median (files or rows) is suspicious

    def due_at(self, day: date) -> datetime:
        return datetime.combine(day + timedelta(days=1), time(), tzinfo=UTC) + self.due_after_day


@dataclass(frozen=True)
class Dataset:
    """A dataset's contract: its raw fields and rules, and how each zone names and keys it."""

    name: str  # the namespace in every zone: raw/<name>/, archive/<name>/, ...
    version: str  # recorded on every clean file; bump on any change to fields or rules
    fields: tuple[Field, ...]
    description: str
    staging_name: str  # the staging asset and warehouse table name
    key: tuple[str, ...] = ()  # clean column names identifying one entity/event
    dedup_key: tuple[str, ...] = ()  # staging keeps one row per this key
    order_by: tuple[str, ...] = ()  # "newest record wins" ordering for snapshots
    snapshot: bool = False  # staging is a snapshot of all entities as of the day
    row_rules: tuple[RowRule, ...] = ()
    staging_joins: tuple[StagingJoin, ...] = ()
    # Above this share of rule-breaking rows the gate rejects the whole file.
    max_bad_row_share: float = 0.05
    # The widest header accepted, known fields included: fields the contract does not know are kept in
    # _rescued_data, so an unbounded width (a file with 50,000 unknown columns) would make every clean
    # row a huge JSON object and every later zone pay for it. Wider files are rejected (too_many_columns).
    max_columns: int = 256
    # Freshness (an advisory asset check): the newest record of a partition, by this column when set,
    # may be at most this old at the end of the partition's day.
    freshness_column: str | None = None
    max_staleness: timedelta = timedelta(days=2)
    # What a normal day of deliveries looks like; None = files come only on change (no expectation).
    delivery: ExpectedDelivery | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = [f.name for f in self.fields]
        duplicated = {n for n in names if names.count(n) > 1}
        if duplicated:
            raise ValueError(f"{self.name}: duplicate field names {sorted(duplicated)}")

    @property
    def source_names(self) -> tuple[str, ...]:
        return tuple(f.source_name for f in self.fields)

    @property
    def header_fields(self) -> tuple[Field, ...]:
        """Fields every file must carry in its header."""
        return tuple(f for f in self.fields if not f.optional)

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name or f.source_name == name:
                return f
        raise KeyError(f"{self.name} has no field {name}")

    def column_descriptions(self) -> dict[str, str]:
        """Every contract column's description (see ``Field.column_description``)."""
        return {f.name: f.column_description for f in self.fields}

    @property
    def typed_schema(self) -> pa.Schema:
        """The standardized columns, without lineage."""
        return pa.schema([pa.field(f.name, f.arrow_type, nullable=not f.required) for f in self.fields])


def snake_case(text: str) -> str:
    """``customerID`` -> ``customer_id``; ``No phone service`` -> ``no_phone_service``."""
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", text.strip())
    text = re.sub(r"[^0-9A-Za-z]+", "_", text)
    return text.strip("_").lower()
