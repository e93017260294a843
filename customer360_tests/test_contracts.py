"""The pandera schemas of clean and staging are generated from the one dataset declaration and catch each defect."""

from __future__ import annotations

import csv
import dataclasses
import io
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pandera.pandas as pdp
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from customer360.checks.models import (
    ALLOWED,
    RANGES,
    REQUIRED,
    ROW_RULES,
    SCHEMA,
    UNIQUE,
    category_of,
    clean_model,
    staging_model,
)
from customer360.checks.validate import validate_files
from customer360.contracts import DATASETS, Kind
from customer360.contracts.schemas import clean_schema
from customer360.processing.standardize import ContractEvaluator
from customer360_tests.test_standardize import rule_rows, valid_row

DAY = date(2024, 1, 1)
OLD_LAYOUT = [f.source_name for f in DATASETS["customers"].fields if not f.optional]
NEW_LAYOUT = list(DATASETS["customers"].source_names)


def customers_csv(ids: list[str], *, layout: list[str] = OLD_LAYOUT, **overrides: str) -> bytes:
    """A customers file in the old (21-field) or new (25-field) CRM layout, extra fields as given."""
    out = io.StringIO()
    header = [*layout, *[k for k in overrides if k not in layout]]
    writer = csv.DictWriter(out, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    for index, customer_id in enumerate(ids):
        row = {**valid_row(DATASETS["customers"]), "customerID": customer_id, **overrides}
        row["msisdn"] = overrides.get("msisdn", f"+4420794{index:05d}")
        writer.writerow({name: row.get(name, "") for name in header})
    return out.getvalue().encode()


def clean_frame(dataset_name: str, rows: int = 3) -> pd.DataFrame:
    dataset = DATASETS[dataset_name]
    base = valid_row(dataset)
    records = []
    for i in range(rows):
        record = dict(base)
        for f in dataset.fields:
            if f.unique_in_file or f.name in dataset.key:
                record[f.source_name] = f"{i:04d}-ABCDE" if f.pattern else f"id-{i}"
        records.append(record)
    header = list(base)
    batch = pa.RecordBatch.from_pydict({h: pa.array([r[h] for r in records], pa.string()) for h in header})
    result = ContractEvaluator(dataset, header, "archive/x/2024-01-01/f.csv", DAY).evaluate(batch, 2)
    assert result.quarantine.num_rows == 0
    return result.clean.to_pandas(types_mapper=pd.ArrowDtype)


def categories(schema: pdp.DataFrameSchema, frame: pd.DataFrame) -> set[str]:
    try:
        schema.validate(frame, lazy=True)
    except pdp.errors.SchemaErrors as errors:
        cases = errors.failure_cases
        return {category_of(str(c), str(s)) for c, s in zip(cases["check"], cases["schema_context"], strict=True)}
    return set()


@pytest.mark.parametrize("name", list(DATASETS))
def test_clean_model_is_the_clean_zone_schema(name: str) -> None:
    dataset = DATASETS[name]
    model = clean_model(dataset, DAY)
    arrow = clean_schema(dataset)
    assert list(model.columns) == arrow.names
    for field in arrow:
        assert model.columns[field.name].dtype.type == pd.ArrowDtype(field.type), field.name
        assert model.columns[field.name].nullable == field.nullable, field.name
    assert categories(model, clean_frame(name)) == set()


@pytest.mark.parametrize("name", list(DATASETS))
def test_staging_model_adds_the_joined_columns_and_the_snapshot_record_date(name: str) -> None:
    dataset = DATASETS[name]
    model = staging_model(dataset, DATASETS, DAY)
    joined = {alias for join in dataset.staging_joins for _, alias in join.columns}
    assert joined <= set(model.columns)
    assert ("_record_date" in model.columns) is dataset.snapshot
    assert set(clean_model(dataset).columns) <= set(model.columns)


def field_defects() -> list[tuple[str, str, str]]:
    cases = []
    for dataset in DATASETS.values():
        for f in dataset.fields:
            if f.required:
                cases.append((dataset.name, f.name, REQUIRED))
            if f.kind is Kind.STATE or f.pattern or f.kind in (Kind.PHONE, Kind.LOWER_TEXT):
                cases.append((dataset.name, f.name, ALLOWED))
            if f.minimum is not None:
                cases.append((dataset.name, f.name, RANGES))
    return cases


@pytest.mark.parametrize(("name", "column", "category"), field_defects())
def test_each_field_defect_fails_its_category(name: str, column: str, category: str) -> None:
    dataset = DATASETS[name]
    frame = clean_frame(name)
    field = dataset.field(column)
    if category == REQUIRED:
        frame.loc[1, column] = None
    elif category == RANGES:
        frame.loc[1, column] = -1 if field.kind is Kind.INT else Decimal("-1")
    else:
        frame.loc[1, column] = "Not Canonical !"

    found = categories(clean_model(dataset, DAY), frame)
    assert category in found
    # A conditional column (duration_sec on a data event) also breaks its row rule; nothing else fails.
    assert found - {category} <= {ROW_RULES}


@pytest.mark.parametrize(("name", "rule"), [(d.name, r) for d in DATASETS.values() for r in d.row_rules])
def test_row_rules_are_checked_on_the_zone(name: str, rule) -> None:
    dataset = DATASETS[name]
    _, bad = rule_rows(dataset, rule)
    header = list(bad)
    batch = pa.RecordBatch.from_pydict({h: pa.array([bad[h]], pa.string()) for h in header})
    # A writer that skipped the rule (as a foreign writer into clean would) produces the row; pandera catches it.
    lax = dataclasses.replace(dataset, row_rules=())
    frame = ContractEvaluator(lax, header, "f.csv", DAY).evaluate(batch, 2).clean.to_pandas(types_mapper=pd.ArrowDtype)
    assert len(frame) == 1

    assert categories(clean_model(dataset, DAY), frame) == {ROW_RULES}


def test_schema_drift_in_a_written_file_is_a_schema_failure() -> None:
    dataset = DATASETS["plans"]
    frame = clean_frame("plans")
    frame["monthly_fee"] = frame["monthly_fee"].astype("float64")  # what a careless writer would produce
    frame["surprise"] = "x"
    assert categories(clean_model(dataset, DAY), frame) == {SCHEMA}
    wrong_day = clean_frame("plans")
    wrong_day["partition_date"] = pd.array([DAY - timedelta(days=1)] * 3, dtype=pd.ArrowDtype(pa.date32()))
    assert categories(clean_model(dataset, DAY), wrong_day) == {SCHEMA}


def test_uniqueness_is_part_of_the_whole_partition_model() -> None:
    dataset = DATASETS["customers"]
    frame = pd.concat([clean_frame("customers", 2), clean_frame("customers", 1)], ignore_index=True)
    assert categories(clean_model(dataset, DAY), frame) == set(), "batches are validated without it"
    assert categories(clean_model(dataset, DAY, with_uniqueness=True), frame) == {UNIQUE}


def test_validation_runs_batch_by_batch_and_traces_failures_to_source_lines(tmp_path: Path) -> None:
    dataset = DATASETS["plans"]
    table = pa.Table.from_pandas(clean_frame("plans", 10), preserve_index=False).cast(clean_schema(dataset))
    bad = table.to_pandas(types_mapper=pd.ArrowDtype)
    bad.loc[[2, 7], "contract"] = "weekly"
    path = tmp_path / "plans.parquet"
    pq.write_table(pa.Table.from_pandas(bad, preserve_index=False).cast(clean_schema(dataset)), path)

    result = validate_files([path], clean_model(dataset, DAY), batch_rows=3)

    assert result.rows == 10 and result.of(SCHEMA).count == 0
    failures = result.of(ALLOWED)
    assert failures.count == 2
    assert [(s["_source_file"], s["_source_line"], s["value"]) for s in failures.samples] == [
        ("archive/x/2024-01-01/f.csv", 4, "weekly"),
        ("archive/x/2024-01-01/f.csv", 9, "weekly"),
    ]


# The landing contract's decimal places per field (../shared/contracts/raw-landing.md, "decimal, N places"):
# every DECIMAL field of every contract must be listed here, with exactly these places.
LANDING_DECIMAL_PLACES = {
    ("customers", "MonthlyCharges"): 2,
    ("customers", "TotalCharges"): 2,
    ("plans", "monthly_fee"): 2,
    ("plans", "data_allowance_gb"): 3,
    ("activity_logs", "data_mb"): 3,
    ("activity_logs", "charge_amount"): 4,
}


def test_decimal_places_are_the_landing_contracts() -> None:
    declared = {
        (dataset.name, f.source_name): f.scale
        for dataset in DATASETS.values()
        for f in dataset.fields
        if f.kind is Kind.DECIMAL
    }
    assert declared == LANDING_DECIMAL_PLACES
    for (name, source), places in LANDING_DECIMAL_PLACES.items():
        field = DATASETS[name].field(source)
        assert field.arrow_type.scale == places and clean_schema(DATASETS[name]).field(field.name).type.scale == places
        row = valid_row(DATASETS[name])

        def evaluated(value: str, row: dict[str, str] = row, name: str = name, source: str = source):  # type: ignore[no-untyped-def]
            batch = pa.RecordBatch.from_pydict(
                {k: pa.array([v], pa.string()) for k, v in {**row, source: value}.items()}
            )
            return ContractEvaluator(DATASETS[name], list(row), "f.csv", DAY).evaluate(batch, 2)

        exact = "0." + "1" * places
        assert evaluated(exact).clean.column(field.name).to_pylist() == [Decimal(exact)], "the stated places type"
        assert evaluated(exact + "1").quarantine.column("rule").to_pylist() == ["type"], "one more place is refused"
