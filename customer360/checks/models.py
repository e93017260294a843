"""pandera schemas of the clean and staging zones, generated from the dataset declarations.

Why generated and not written as ``DataFrameModel`` classes: a dataset is declared once (its contract
module); a hand-written model per zone would be a second declaration that drifts from the first. Every
column, dtype, nullability and value check below is derived from ``Dataset``/``Field``/``RowRule``, so a
new field or rule is guarded in clean and staging the moment it is declared.

Why ``pd.ArrowDtype`` columns: the zones are Parquet written from Arrow, and Arrow-backed pandas columns
keep their exact types (decimal128 with its scale, timestamps in UTC, nullable booleans and integers)
without a copy. pandas 3's default ``str`` dtype or numpy's float-for-nullable-int would make the dtype
check compare something other than what the lake holds.

Every check carries a ``name`` of the form ``<category>:<detail>``; the asset checks
(``customer360.checks``) group pandera's failure cases by that category (allowed values, ranges, row rules,
...), so one validation pass feeds several checks a user sees separately in the UI.
"""

from __future__ import annotations

from datetime import date

import pandas as pd
import pandera.pandas as pdp
import pyarrow as pa

from customer360.contracts.model import Dataset, Field, Kind, RowRule
from customer360.contracts.schemas import (
    CONTRACT_VERSION,
    E164_PATTERN,
    LINEAGE_FIELDS,
    PARTITION_COLUMN,
    RECORD_DATE,
    SOURCE_FILE,
    SOURCE_LINE,
    joined_fields,
)

# Check categories: the suffix of the asset check each failure case is reported under.
SCHEMA = "schema_and_types"
REQUIRED = "required_not_null"
ALLOWED = "allowed_values"
RANGES = "value_ranges"
ROW_RULES = "row_rules"
UNIQUE = "unique_keys"


def arrow_dtype(arrow_type: pa.DataType) -> pd.ArrowDtype:
    return pd.ArrowDtype(arrow_type)


def _value_checks(field: Field) -> list[pdp.Check]:
    """The per-value rules of one field, on its standardized (typed) values."""
    checks: list[pdp.Check] = []
    if field.kind is Kind.STATE:
        canonical = [field.canonical_state(s) for s in field.states]
        checks.append(pdp.Check.isin(canonical, error=f"{ALLOWED}:{field.name}"))
    if field.kind in (Kind.TEXT, Kind.LOWER_TEXT) and field.full_pattern:
        checks.append(pdp.Check.str_matches(field.full_pattern, error=f"{ALLOWED}:{field.name} pattern"))
    if field.kind is Kind.PHONE:
        checks.append(pdp.Check.str_matches(E164_PATTERN, error=f"{ALLOWED}:{field.name} E.164"))
    if field.kind is Kind.LOWER_TEXT:
        checks.append(pdp.Check(lambda s: s == s.str.lower(), error=f"{ALLOWED}:{field.name} lowercase"))
    if field.minimum is not None:
        minimum = int(field.minimum) if field.kind is Kind.INT else field.minimum
        checks.append(pdp.Check.ge(minimum, error=f"{RANGES}:{field.name} >= {field.minimum}"))
    return checks


def _row_rule_check(rule: RowRule) -> list[pdp.Check]:
    """A row rule as dataframe-wide checks, one per column it constrains.

    Each returns a boolean frame that is False only in the constrained column of a row breaking the rule
    (pandera wants the frame's shape), so the failure case is that column's value instead of every
    column of the row.
    """
    checks: list[pdp.Check] = []

    def applies(frame: pd.DataFrame) -> pd.Series:
        mask = pd.Series(True, index=frame.index)
        if rule.when_column:
            when = frame[rule.when_column].astype(object)
            if rule.when_in:
                mask &= when.isin(rule.when_in)
            if rule.when_not_in:
                mask &= when.notna() & ~when.isin(rule.when_not_in)
        return mask

    for column in rule.require_null:
        checks.append(
            pdp.Check(
                lambda frame, column=column: _only(frame, column, ~(applies(frame) & frame[column].notna())),
                error=f"{ROW_RULES}:{rule.name} ({column})",
            )
        )
    if rule.not_before:
        later, earlier = rule.not_before
        checks.append(
            pdp.Check(
                lambda frame: _only(frame, later, ~(applies(frame) & (frame[later] < frame[earlier]).fillna(False))),
                error=f"{ROW_RULES}:{rule.name}",
            )
        )
    return checks


def _only(frame: pd.DataFrame, column: str, passed: pd.Series) -> pd.DataFrame:
    result = pd.DataFrame(True, index=frame.index, columns=frame.columns)
    result[column] = passed.astype(bool).to_numpy()
    return result


def _contract_columns(dataset: Dataset) -> dict[str, pdp.Column]:
    return {
        f.name: pdp.Column(
            arrow_dtype(f.arrow_type),
            nullable=not f.required,
            checks=_value_checks(f),
            description=f.description or None,
        )
        for f in dataset.fields
    }


def _lineage_columns(dataset: Dataset, day: date | None, *, version_pinned: bool) -> dict[str, pdp.Column]:
    columns: dict[str, pdp.Column] = {}
    for lineage in LINEAGE_FIELDS:
        name = lineage.name
        checks: list[pdp.Check] = []
        if name == PARTITION_COLUMN and day is not None:
            checks.append(pdp.Check.eq(day, error=f"{SCHEMA}:{PARTITION_COLUMN} is the partition's day"))
        if name == SOURCE_LINE:
            checks.append(pdp.Check.ge(1, error=f"{SCHEMA}:{SOURCE_LINE} >= 1"))
        if name == CONTRACT_VERSION and version_pinned:
            checks.append(pdp.Check.eq(dataset.version, error=f"{SCHEMA}:written by contract v{dataset.version}"))
        columns[name] = pdp.Column(arrow_dtype(lineage.type), nullable=lineage.nullable, checks=checks)
    return columns


def clean_model(dataset: Dataset, day: date | None = None, *, with_uniqueness: bool = False) -> pdp.DataFrameSchema:
    """The clean zone of ``dataset`` (of ``day`` when given): typed contract columns, then lineage.

    Every clean row was written by the current contract (clean is rebuilt from archive/ on every run), so
    ``_contract_version`` must be the contract's. ``with_uniqueness`` adds the per-file uniqueness of
    ``unique_in_file`` fields: only meaningful on a whole partition, not on one batch of it.
    """
    unique = [SOURCE_FILE, *[f.name for f in dataset.fields if f.unique_in_file]]
    return pdp.DataFrameSchema(
        {**_contract_columns(dataset), **_lineage_columns(dataset, day, version_pinned=True)},
        checks=[c for rule in dataset.row_rules for c in _row_rule_check(rule)],
        strict=True,
        unique=unique if with_uniqueness and len(unique) > 1 else None,
        name=f"clean/{dataset.name} v{dataset.version}",
        description=dataset.description,
    )


def staging_model(
    dataset: Dataset, datasets: dict[str, Dataset], day: date | None = None, *, with_uniqueness: bool = False
) -> pdp.DataFrameSchema:
    """The staging zone of ``dataset``: the clean columns stamped with the day, plus the joined columns.

    Snapshots carry rows written by earlier contract versions (a record kept from a day before a
    contract change), so ``_contract_version`` is required but not pinned here. ``with_uniqueness`` adds
    the one-row-per-``dedup_key`` rule (customer_id in a customers snapshot, event_id in a day of
    activity): only meaningful on a whole partition.
    """
    columns = {**_contract_columns(dataset), **_lineage_columns(dataset, day, version_pinned=False)}
    if dataset.snapshot:
        columns[RECORD_DATE] = pdp.Column(arrow_dtype(pa.date32()), nullable=False)
        if day is not None:
            columns[RECORD_DATE] = pdp.Column(
                arrow_dtype(pa.date32()), nullable=False, checks=[pdp.Check.le(day, error=f"{SCHEMA}:{RECORD_DATE}")]
            )
    for joined in joined_fields(dataset, datasets):
        if joined.name not in columns:
            columns[joined.name] = pdp.Column(arrow_dtype(joined.type), nullable=True)
    return pdp.DataFrameSchema(
        columns,
        checks=[c for rule in dataset.row_rules for c in _row_rule_check(rule)],
        strict=True,
        unique=list(dataset.dedup_key) if with_uniqueness and dataset.dedup_key else None,
        name=f"staging/{dataset.staging_name}",
        description=dataset.description,
    )


def category_of(check: str, schema_context: str) -> str:
    """Which asset check a pandera failure case belongs to (see the module docstring)."""
    if ":" in check and check.split(":", 1)[0] in (SCHEMA, ALLOWED, RANGES, ROW_RULES):
        return check.split(":", 1)[0]
    if check == "not_nullable":
        return REQUIRED
    if check in ("field_uniqueness", "multiple_fields_uniqueness"):
        return UNIQUE
    return SCHEMA  # column_in_schema, column_in_dataframe, dtype('...'), ...
