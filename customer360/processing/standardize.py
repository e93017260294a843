"""Turn all-string batches into typed, standardized rows, and split off the rows that break a rule.

This is the contract, executed. Each field's kind says how a trimmed string becomes a typed value and
each rule says which values are acceptable; a row that breaks any rule is quarantined with the first
rule it broke, the column and the offending raw value, never dropped. Everything is vectorized Arrow
compute on one batch at a time; only a batch holding a value that passes the shape check but still does
not convert (say 2023-02-29) takes a per-value path, and only for that column.

Standardization rules (tested one by one): values are trimmed and whitespace-only becomes null; Yes/No,
0/1 and true/false flags become booleans; closed sets become canonical snake_case states, so
``No phone service`` stays a state distinct from ``no``; timestamps with offsets become UTC; money is a
decimal with the contract's scale; emails are lowercased; phone numbers are normalized to E.164 or the
row is quarantined.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

import pyarrow as pa
import pyarrow.compute as pc

from customer360.contracts.model import Dataset, Field, Kind

LINEAGE_FIELDS = (
    pa.field("partition_date", pa.date32(), nullable=False),
    pa.field("_source_file", pa.string(), nullable=False),
    pa.field("_source_line", pa.int64(), nullable=False),
    pa.field("_contract_version", pa.string(), nullable=False),
    pa.field("_rescued_data", pa.string()),
)

QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("partition_date", pa.date32(), nullable=False),
        pa.field("_source_file", pa.string(), nullable=False),
        pa.field("_source_line", pa.int64(), nullable=False),
        pa.field("rule", pa.string(), nullable=False),
        pa.field("column", pa.string()),
        pa.field("value", pa.string()),
        pa.field("violations", pa.int32(), nullable=False),
        pa.field("record", pa.string(), nullable=False),
        pa.field("_contract_version", pa.string(), nullable=False),
    ]
)

_SHAPES = {
    Kind.INT: r"^[+-]?[0-9]+$",
    Kind.DECIMAL: r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)$",
    Kind.DATE: r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
    Kind.TIMESTAMP: (
        r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?"
        r"(Z|[+-][0-9]{2}:?[0-9]{2})$"
    ),
}
_E164 = r"^\+[1-9][0-9]{6,14}$"


def clean_schema(dataset: Dataset) -> pa.Schema:
    """The clean zone's schema: standardized contract columns, then lineage."""
    return pa.schema([*dataset.typed_schema, *LINEAGE_FIELDS])


@dataclass
class Violation:
    rule: str
    column: str | None
    mask: pa.Array  # True where the row breaks the rule


@dataclass
class BatchResult:
    clean: pa.Table
    quarantine: pa.Table


@dataclass
class FileStats:
    rows: int = 0
    clean_rows: int = 0
    quarantined_rows: int = 0
    rule_counts: dict[str, int] = field(default_factory=dict)
    samples: list[dict[str, object]] = field(default_factory=list)
    rescued_columns: tuple[str, ...] = ()

    def add(self, result: BatchResult, max_samples: int = 20) -> None:
        self.clean_rows += result.clean.num_rows
        self.quarantined_rows += result.quarantine.num_rows
        self.rows += result.clean.num_rows + result.quarantine.num_rows
        if result.quarantine.num_rows:
            for rule, count in zip(*_value_counts(result.quarantine.column("rule")), strict=True):
                self.rule_counts[rule] = self.rule_counts.get(rule, 0) + count
            room = max_samples - len(self.samples)
            if room > 0:
                sample = result.quarantine.slice(0, room).select(["_source_line", "rule", "column", "value"])
                self.samples.extend(
                    {"line": r["_source_line"], "rule": r["rule"], "column": r["column"], "value": r["value"]}
                    for r in sample.to_pylist()
                )


class ContractEvaluator:
    """Evaluates one file's batches against a dataset contract. One instance per file (uniqueness is per file)."""

    def __init__(self, dataset: Dataset, header: list[str], source_file: str, partition_date: date) -> None:
        self.dataset = dataset
        self.header = header
        self.source_file = source_file
        self.partition_date = partition_date
        known = set(dataset.source_names)
        self.rescued_columns = tuple(name for name in header if name not in known)
        self._seen: dict[str, set[str]] = {f.name: set() for f in dataset.fields if f.unique_in_file}
        self._schema = clean_schema(dataset)

    def evaluate(self, batch: pa.RecordBatch, first_line: int) -> BatchResult:
        rows = batch.num_rows
        present = set(batch.schema.names)
        typed: dict[str, pa.Array] = {}
        raw_values: dict[str, pa.Array] = {}
        violations: list[Violation] = []
        for contract_field in self.dataset.fields:
            if contract_field.source_name not in present:
                typed[contract_field.name] = pa.nulls(rows, contract_field.arrow_type)
                if contract_field.required:
                    violations.append(Violation("required", contract_field.name, _all(rows, True)))
                continue
            raw = batch.column(contract_field.source_name)
            value = _trimmed_or_null(raw)
            raw_values[contract_field.name] = value
            typed_values, field_violations = _convert(contract_field, value)
            typed[contract_field.name] = typed_values
            violations.extend(field_violations)
            if contract_field.unique_in_file:
                violations.append(self._duplicates(contract_field, value))
        violations.extend(self._row_rule_violations(typed))
        bad = _any(violations, rows)
        lines = pa.array(range(first_line, first_line + rows), pa.int64())
        good = pc.invert(bad)
        clean = self._clean_table(batch, typed, lines, good, rows)
        quarantine = self._quarantine_table(batch, raw_values, violations, lines, bad)
        return BatchResult(clean, quarantine)

    def _duplicates(self, contract_field: Field, value: pa.Array) -> Violation:
        seen = self._seen[contract_field.name]
        flags = []
        for item in value.to_pylist():
            if item is None:
                flags.append(False)
            elif item in seen:
                flags.append(True)
            else:
                seen.add(item)
                flags.append(False)
        return Violation("unique_in_file", contract_field.name, pa.array(flags, pa.bool_()))

    def _row_rule_violations(self, typed: dict[str, pa.Array]) -> list[Violation]:
        found = []
        for rule in self.dataset.row_rules:
            applies = _all(len(next(iter(typed.values()))), True)
            if rule.when_column:
                when = typed[rule.when_column]
                if rule.when_in:
                    applies = pc.fill_null(pc.is_in(when, pa.array(rule.when_in)), False)
                if rule.when_not_in:
                    applies = pc.and_(
                        applies, pc.invert(pc.fill_null(pc.is_in(when, pa.array(rule.when_not_in)), True))
                    )
            for column in rule.require_null:
                mask = pc.and_(applies, pc.is_valid(typed[column]))
                found.append(Violation(rule.name, column, mask))
            if rule.not_before:
                later, earlier = rule.not_before
                mask = pc.fill_null(pc.and_(applies, pc.less(typed[later], typed[earlier])), False)
                found.append(Violation(rule.name, later, mask))
        return found

    def _clean_table(
        self, batch: pa.RecordBatch, typed: dict[str, pa.Array], lines: pa.Array, good: pa.Array, rows: int
    ) -> pa.Table:
        lineage = {
            "partition_date": pa.array([self.partition_date] * rows, pa.date32()),
            "_source_file": pa.array([self.source_file] * rows, pa.string()),
            "_source_line": lines,
            "_contract_version": pa.array([self.dataset.version] * rows, pa.string()),
            "_rescued_data": self._rescued(batch, rows),
        }
        columns = [typed[f.name] if f.name in typed else lineage[f.name] for f in self._schema]
        table = pa.Table.from_arrays(columns, schema=self._schema)
        return table.filter(good)

    def _rescued(self, batch: pa.RecordBatch, rows: int) -> pa.Array:
        """Fields the contract does not know yet, kept as one JSON object per row, never dropped.

        Read from each batch, not only the header: a JSON Lines file may introduce a key mid-file.
        """
        known = set(self.dataset.source_names)
        unknown = [name for name in batch.schema.names if name not in known]
        self.rescued_columns = (*self.rescued_columns, *[n for n in unknown if n not in self.rescued_columns])
        if not unknown:
            return pa.nulls(rows, pa.string())
        columns = {name: batch.column(name).to_pylist() for name in unknown}
        return pa.array(
            [
                json.dumps({name: values[i] for name, values in columns.items()}, ensure_ascii=False)
                for i in range(rows)
            ],
            pa.string(),
        )

    def _quarantine_table(
        self,
        batch: pa.RecordBatch,
        raw_values: dict[str, pa.Array],
        violations: list[Violation],
        lines: pa.Array,
        bad: pa.Array,
    ) -> pa.Table:
        count = pc.sum(bad).as_py() or 0
        if count == 0:
            return QUARANTINE_SCHEMA.empty_table()
        rule = pa.nulls(len(bad), pa.string())
        column = pa.nulls(len(bad), pa.string())
        value = pa.nulls(len(bad), pa.string())
        violation_count = pa.array([0] * len(bad), pa.int32())
        for violation in violations:
            first = pc.and_(violation.mask, pc.is_null(rule))
            rule = pc.if_else(first, pa.scalar(violation.rule), rule)
            column = pc.if_else(first, pa.scalar(violation.column, pa.string()), column)
            if violation.column in raw_values:
                value = pc.if_else(first, raw_values[violation.column], value)
            violation_count = pc.add(violation_count, pc.cast(violation.mask, pa.int32()))
        bad_batch = batch.filter(bad)
        records = [json.dumps(r, ensure_ascii=False) for r in bad_batch.to_pylist()]
        return pa.table(
            {
                "partition_date": pa.array([self.partition_date] * count, pa.date32()),
                "_source_file": pa.array([self.source_file] * count, pa.string()),
                "_source_line": lines.filter(bad),
                "rule": rule.filter(bad),
                "column": column.filter(bad),
                "value": value.filter(bad),
                "violations": violation_count.filter(bad),
                "record": pa.array(records, pa.string()),
                "_contract_version": pa.array([self.dataset.version] * count, pa.string()),
            },
            schema=QUARANTINE_SCHEMA,
        )


def _convert(contract_field: Field, value: pa.Array) -> tuple[pa.Array, list[Violation]]:
    """Typed values for one field, and the violations its values commit."""
    violations: list[Violation] = []
    name = contract_field.name
    if contract_field.required:
        violations.append(Violation("required", name, pc.is_null(value)))
    kind = contract_field.kind
    if kind in (Kind.TEXT, Kind.LOWER_TEXT):
        typed = pc.utf8_lower(value) if kind is Kind.LOWER_TEXT else value
        if contract_field.pattern:
            matches = pc.match_substring_regex(value, f"^(?:{contract_field.pattern})$")
            violations.append(Violation("pattern", name, _false_where(matches)))
    elif kind is Kind.PHONE:
        digits = pc.replace_substring_regex(value, r"[\s\-().]", "")
        digits = pc.replace_substring_regex(digits, r"^00", "+")
        ok = pc.match_substring_regex(digits, _E164)
        violations.append(Violation("e164", name, _false_where(ok)))
        typed = pc.if_else(pc.fill_null(ok, False), digits, pa.nulls(len(value), pa.string()))
    elif kind in (Kind.FLAG, Kind.STATE):
        allowed = pa.array(contract_field.allowed_values)
        # is_in says False (not null) for a null value; a blank optional flag or state is null, not a violation.
        known = pc.is_in(value, allowed)
        violations.append(Violation("allowed_values", name, pc.and_(pc.is_valid(value), pc.invert(known))))
        if kind is Kind.FLAG:
            typed = pc.equal(value, pa.scalar(contract_field.true_value))
        else:
            canonical = pa.array([contract_field.canonical_state(s) for s in contract_field.states])
            typed = pc.take(canonical, pc.index_in(value, allowed))
        typed = pc.if_else(known, typed, pa.nulls(len(value), typed.type))
    else:
        shaped = pc.match_substring_regex(value, _SHAPES[kind])
        candidate = pc.if_else(pc.fill_null(shaped, False), value, pa.nulls(len(value), pa.string()))
        typed, unconvertible = _cast_per_value_on_failure(candidate, contract_field.arrow_type)
        violations.append(Violation("type", name, pc.or_(_false_where(shaped), unconvertible)))
        if contract_field.minimum is not None:
            below = pc.less(typed, pa.scalar(contract_field.minimum).cast(typed.type))
            violations.append(Violation("minimum", name, pc.fill_null(below, False)))
    return typed, violations


def _cast_per_value_on_failure(values: pa.Array, target: pa.DataType) -> tuple[pa.Array, pa.Array]:
    """Cast; when a value refuses (an impossible date, too many decimals), find it without failing the batch."""
    try:
        return pc.cast(values, target), _all(len(values), False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    cast_one: Callable[[object], object] = lambda item: pc.cast(pa.array([item], pa.string()), target)[0].as_py()  # noqa: E731
    typed: list[object] = []
    failed: list[bool] = []
    for item in values.to_pylist():
        if item is None:
            typed.append(None)
            failed.append(False)
            continue
        try:
            typed.append(cast_one(item))
            failed.append(False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            typed.append(None)
            failed.append(True)
    return pa.array(typed, target), pa.array(failed, pa.bool_())


def _trimmed_or_null(raw: pa.Array) -> pa.Array:
    trimmed = pc.utf8_trim_whitespace(raw)
    return pc.if_else(pc.equal(pc.utf8_length(trimmed), 0), pa.nulls(len(raw), pa.string()), trimmed)


def _false_where(matches: pa.Array) -> pa.Array:
    """A present value that fails the predicate; null values are judged by 'required', not here."""
    return pc.fill_null(pc.invert(matches), False)


def _all(rows: int, value: bool) -> pa.Array:
    return pa.array([value] * rows, pa.bool_()) if rows < 64 else pc.cast(pa.repeat(value, rows), pa.bool_())


def _any(violations: list[Violation], rows: int) -> pa.Array:
    bad = _all(rows, False)
    for violation in violations:
        bad = pc.or_(bad, violation.mask)
    return bad


def _value_counts(column: pa.ChunkedArray) -> tuple[list[str], list[int]]:
    counts = pc.value_counts(column)
    return counts.field("values").to_pylist(), counts.field("counts").to_pylist()
