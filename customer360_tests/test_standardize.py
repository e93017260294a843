"""Standardization is part of the contract: every rule of every dataset, with a passing and a failing frame.

The cases are generated from the contracts themselves (``DATASETS``), so a new field or rule is covered
the moment it is declared; a field whose valid value cannot be derived from its kind (a new ``pattern``)
fails ``test_every_field_has_a_valid_example`` until an example is added to ``PATTERN_EXAMPLES``.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal

import pyarrow as pa
import pytest

from customer360.contracts import DATASETS, Dataset, Field, Kind, RowRule
from customer360.processing.standardize import ContractEvaluator

DAY = date(2024, 1, 1)
PATTERN_EXAMPLES = {r"[0-9]{4}-[A-Z]{5}": "7590-VHVEG"}


def valid_value(field: Field) -> str:
    if field.kind in (Kind.TEXT, Kind.LOWER_TEXT):
        if field.pattern:
            return PATTERN_EXAMPLES[field.pattern]
        return "Ann@Example.COM" if field.kind is Kind.LOWER_TEXT else "value-1"
    if field.kind is Kind.FLAG:
        return str(field.true_value)
    if field.kind is Kind.STATE:
        return field.states[-1]
    return {
        Kind.PHONE: "+44 20 7946 0958",
        Kind.INT: "12",
        Kind.DECIMAL: "12.50",
        Kind.TIMESTAMP: "2024-01-01T10:00:00+02:00",
        Kind.DATE: "2024-01-01",
    }[field.kind]


def valid_row(dataset: Dataset) -> dict[str, str]:
    row = {f.source_name: valid_value(f) for f in dataset.fields}
    for rule in dataset.row_rules:
        for column in rule.require_null:  # conditional columns: absent satisfies every such rule
            row[dataset.field(column).source_name] = ""
    return row


def evaluate(dataset: Dataset, rows: list[dict[str, str]]):
    header = list(rows[0])
    batch = pa.RecordBatch.from_pydict({name: pa.array([r[name] for r in rows], pa.string()) for name in header})
    return ContractEvaluator(dataset, header, "archive/test/2024-01-01/file.csv", DAY).evaluate(batch, 2)


def field_cases() -> list[tuple[str, str, str, str]]:
    """(dataset, source field, failing raw value, rule it must break) for every field rule of every contract."""
    cases = []
    for dataset in DATASETS.values():
        for f in dataset.fields:
            if f.required:
                cases += [
                    (dataset.name, f.source_name, "", "required"),
                    (dataset.name, f.source_name, "   ", "required"),
                ]
            if f.kind in (Kind.INT, Kind.DECIMAL, Kind.DATE, Kind.TIMESTAMP):
                cases.append((dataset.name, f.source_name, "abc", "type"))
            if f.kind is Kind.DATE:
                cases.append((dataset.name, f.source_name, "2023-02-29", "type"))
            if f.kind is Kind.DECIMAL:
                cases.append((dataset.name, f.source_name, "1." + "1" * (f.scale + 1), "type"))
            if f.kind is Kind.TIMESTAMP:
                cases.append((dataset.name, f.source_name, "2024-01-01T10:00:00", "type"))  # no offset
            if f.minimum is not None:
                cases.append((dataset.name, f.source_name, "-1", "minimum"))
            if f.allowed_values:
                cases.append((dataset.name, f.source_name, "Maybe", "allowed_values"))
            if f.pattern:
                cases.append((dataset.name, f.source_name, "not-an-id", "pattern"))
            if f.kind is Kind.PHONE:
                cases.append((dataset.name, f.source_name, "12ab", "e164"))
    return cases


def test_every_field_has_a_valid_example() -> None:
    for dataset in DATASETS.values():
        result = evaluate(dataset, [valid_row(dataset)])
        assert result.quarantine.num_rows == 0, (dataset.name, result.quarantine.to_pylist())
        assert result.clean.num_rows == 1


@pytest.mark.parametrize(("dataset_name", "source_name", "value", "rule"), field_cases())
def test_field_rule_passes_a_valid_value_and_quarantines_a_breaking_one(
    dataset_name: str, source_name: str, value: str, rule: str
) -> None:
    dataset = DATASETS[dataset_name]
    good, bad = valid_row(dataset), {**valid_row(dataset), source_name: value}

    passing, failing = evaluate(dataset, [good]), evaluate(dataset, [bad])

    assert passing.clean.num_rows == 1 and passing.quarantine.num_rows == 0
    assert failing.clean.num_rows == 0
    quarantined = failing.quarantine.to_pylist()[0]
    assert (quarantined["rule"], quarantined["column"]) == (rule, dataset.field(source_name).name)
    assert quarantined["value"] == (value.strip() or None)
    assert json.loads(quarantined["record"])[source_name] == value, "the raw record is kept as sent"
    assert quarantined["_source_line"] == 2 and quarantined["_source_file"].endswith("file.csv")


@pytest.mark.parametrize(
    ("dataset_name", "source_name"),
    [(d.name, f.source_name) for d in DATASETS.values() for f in d.fields if f.unique_in_file],
)
def test_unique_in_file_quarantines_the_second_occurrence(dataset_name: str, source_name: str) -> None:
    dataset = DATASETS[dataset_name]
    row = valid_row(dataset)

    result = evaluate(dataset, [row, dict(row)])

    assert result.clean.num_rows == 1
    assert [(r["rule"], r["_source_line"]) for r in result.quarantine.to_pylist()] == [("unique_in_file", 3)]


def rule_rows(dataset: Dataset, rule: RowRule) -> tuple[dict[str, str], dict[str, str]]:
    """A row that satisfies ``rule`` and one that breaks it, built from the rule's declaration."""
    good, bad = valid_row(dataset), valid_row(dataset)
    if rule.require_null:
        when = dataset.field(rule.when_column or "")
        applies = [s for s in when.states if when.canonical_state(s) not in rule.when_not_in]
        exempt = [s for s in when.states if when.canonical_state(s) in rule.when_not_in]
        for column in rule.require_null:
            source = dataset.field(column).source_name
            good[when.source_name], good[source] = exempt[0], valid_value(dataset.field(column))
            bad[when.source_name], bad[source] = applies[0], valid_value(dataset.field(column))
    if rule.not_before:
        later, earlier = (dataset.field(c).source_name for c in rule.not_before)
        good[earlier], good[later] = "2024-01-01", "2024-06-30"
        bad[earlier], bad[later] = "2024-06-30", "2024-01-01"
    return good, bad


@pytest.mark.parametrize(
    ("dataset_name", "rule_name"), [(d.name, r.name) for d in DATASETS.values() for r in d.row_rules]
)
def test_row_rule_passes_a_valid_row_and_quarantines_a_breaking_one(dataset_name: str, rule_name: str) -> None:
    dataset = DATASETS[dataset_name]
    rule = next(r for r in dataset.row_rules if r.name == rule_name)
    good, bad = rule_rows(dataset, rule)

    assert evaluate(dataset, [good]).quarantine.num_rows == 0
    failing = evaluate(dataset, [bad])

    assert failing.clean.num_rows == 0
    assert failing.quarantine.column("rule").to_pylist() == [rule_name]


# --- the standardizations the contract promises, one by one -----------------------------------------

CUSTOMERS = DATASETS["customers"]


def customer(**overrides: str) -> dict[str, str]:
    return {**valid_row(CUSTOMERS), **overrides}


def clean_row(**overrides: str) -> dict[str, object]:
    result = evaluate(CUSTOMERS, [customer(**overrides)])
    assert result.quarantine.num_rows == 0, result.quarantine.to_pylist()
    return result.clean.to_pylist()[0]


def test_values_are_trimmed() -> None:
    row = clean_row(customerID="  7590-VHVEG ", InternetService=" Fiber optic  ", tenure=" 7 ")
    assert (row["customer_id"], row["internet_service"], row["tenure"]) == ("7590-VHVEG", "fiber_optic", 7)


def test_whitespace_only_becomes_null_not_an_error() -> None:
    assert clean_row(TotalCharges="   ", gender="")["total_charges"] is None


def test_values_trim_exactly_as_arrow_trims_whether_or_not_the_column_needs_it() -> None:
    """A column whose values have nothing to trim skips the trim (no copy of its strings); none may read differently."""
    import random

    import pyarrow.compute as pc

    from customer360.processing import standardize

    def trimmed_by_arrow(raw: pa.Array) -> list[str | None]:
        trimmed = pc.utf8_trim_whitespace(raw)
        return [value or None for value in trimmed.to_pylist()]

    edges = [" ", "\t", "\n", "\r", "\x0b", "\x1f", "\u00a0", "\u2009", "\u3000", "\x85", "\u00e9", "\u0416"]
    rng = random.Random(7)
    skipped = 0
    for _ in range(2000):
        values = [
            None
            if rng.random() < 0.1
            else "".join(rng.choice(edges if rng.random() < 0.2 else "ab1-") for _ in range(rng.randint(0, 4)))
            for _ in range(rng.randint(1, 12))
        ]
        raw = pa.array(values, pa.string())
        raw = raw.slice(rng.randint(0, len(raw) - 1)) if rng.random() < 0.5 else raw
        skipped += standardize._untrimmed_or_null(raw) is not None
        got = standardize._trimmed_or_null(raw)
        got.validate(full=True)
        assert got.to_pylist() == trimmed_by_arrow(raw), values
    assert 200 < skipped < 1800, "both ways were taken"


@pytest.mark.parametrize(("raw", "expected"), [("Yes", True), ("No", False)])
def test_yes_no_flags_become_booleans(raw: str, expected: bool) -> None:
    assert clean_row(Partner=raw, Churn=raw)["partner"] is expected


@pytest.mark.parametrize(("raw", "expected"), [("1", True), ("0", False)])
def test_zero_one_flags_become_booleans(raw: str, expected: bool) -> None:
    assert clean_row(SeniorCitizen=raw)["senior_citizen"] is expected


def test_flag_spellings_outside_the_pair_are_quarantined() -> None:
    result = evaluate(CUSTOMERS, [customer(Partner="yes"), customer(customerID="0002-ABCDE", SeniorCitizen="2")])
    assert result.quarantine.column("rule").to_pylist() == ["allowed_values", "allowed_values"]


@pytest.mark.parametrize(
    ("field", "raw", "state"),
    [
        ("MultipleLines", "No phone service", "no_phone_service"),
        ("MultipleLines", "No", "no"),
        ("OnlineSecurity", "No internet service", "no_internet_service"),
        ("OnlineSecurity", "No", "no"),
    ],
)
def test_no_service_is_a_state_distinct_from_no(field: str, raw: str, state: str) -> None:
    column = CUSTOMERS.field(field).name
    assert clean_row(**{field: raw})[column] == state


def test_timestamps_with_offsets_become_utc() -> None:
    row = clean_row(updated_at="2024-01-01T01:30:00+02:00")
    assert row["updated_at"] == datetime(2023, 12, 31, 23, 30, tzinfo=UTC)
    assert clean_row(updated_at="2024-01-01 10:00:00Z")["updated_at"] == datetime(2024, 1, 1, 10, tzinfo=UTC)


def test_money_is_an_exact_decimal() -> None:
    row = clean_row(MonthlyCharges="29.85", TotalCharges="1889.5")
    assert row["monthly_charges"] == Decimal("29.85") and row["total_charges"] == Decimal("1889.50")
    assert evaluate(CUSTOMERS, [customer(MonthlyCharges="29.855")]).quarantine.column("rule").to_pylist() == ["type"]


def test_emails_are_lowercased() -> None:
    assert clean_row(email="  Ann.Lee@Example.COM ")["email"] == "ann.lee@example.com"


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("+44 20 7946 0958", "+442079460958"),
        ("0044 (20) 7946-0958", "+442079460958"),
        ("+1.415.555.0100", "+14155550100"),
    ],
)
def test_msisdn_is_normalized_to_e164(raw: str, e164: str) -> None:
    assert clean_row(msisdn=raw)["msisdn"] == e164


@pytest.mark.parametrize("raw", ["020 7946 0958", "+0 123 456 789", "+44 20 7946 0958 ext 2", "+1234"])
def test_msisdn_that_is_not_e164_is_quarantined(raw: str) -> None:
    quarantined = evaluate(CUSTOMERS, [customer(msisdn=raw)]).quarantine.to_pylist()
    assert [(q["rule"], q["column"], q["value"]) for q in quarantined] == [("e164", "msisdn", raw)]


def test_a_row_breaking_several_rules_is_quarantined_once_with_its_first_rule_and_the_count() -> None:
    quarantined = evaluate(CUSTOMERS, [customer(tenure="-1", Churn="Maybe")]).quarantine.to_pylist()
    assert len(quarantined) == 1
    assert (quarantined[0]["rule"], quarantined[0]["violations"]) == ("minimum", 2)
