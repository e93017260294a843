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
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date

import numpy as np
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
EVALUATION_THREADS = min(4, os.cpu_count() or 1)


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
    rows: int
    clean_rows: int
    clean: pa.Table | None  # None when evaluated for counts only (the gate's verdict)
    quarantine: pa.Table  # always built: it holds only the few rows that broke a rule


@dataclass
class FileStats:
    rows: int = 0
    clean_rows: int = 0
    quarantined_rows: int = 0
    rule_counts: dict[str, int] = field(default_factory=dict)
    samples: list[dict[str, object]] = field(default_factory=list)
    rescued_columns: tuple[str, ...] = ()

    def add(self, result: BatchResult, max_samples: int = 20) -> None:
        self.clean_rows += result.clean_rows
        self.quarantined_rows += result.quarantine.num_rows
        self.rows += result.rows
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

    def evaluate(self, batch: pa.RecordBatch, first_line: int, *, collect: bool = True) -> BatchResult:
        """Type and check one batch. ``collect=False`` skips building the clean rows (the gate only counts).

        Safe to call from several threads at once for different batches, except for contracts with
        ``unique_in_file`` fields, whose duplicates depend on batch order (see ``parallel_safe``).
        """
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
        bad_rows = pc.sum(bad).as_py() or 0
        lines = pa.array(np.arange(first_line, first_line + rows, dtype=np.int64))
        clean = None
        if collect:
            clean = self._clean_table(batch, typed, lines, pc.invert(bad) if bad_rows else None, rows)
        quarantine = self._quarantine_table(batch, raw_values, violations, lines, bad, bad_rows)
        return BatchResult(rows, rows - bad_rows, clean, quarantine)

    @property
    def parallel_safe(self) -> bool:
        """Whether batches may be evaluated concurrently (no per-file state carried between batches)."""
        return not self._seen

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
        self, batch: pa.RecordBatch, typed: dict[str, pa.Array], lines: pa.Array, good: pa.Array | None, rows: int
    ) -> pa.Table:
        lineage = {
            "partition_date": _constant(self.partition_date, pa.date32(), rows),
            "_source_file": _constant(self.source_file, pa.string(), rows),
            "_source_line": lines,
            "_contract_version": _constant(self.dataset.version, pa.string(), rows),
            "_rescued_data": self._rescued(batch, rows),
        }
        columns = [typed[f.name] if f.name in typed else lineage[f.name] for f in self._schema]
        table = pa.Table.from_arrays(columns, schema=self._schema)
        return table if good is None else table.filter(good)

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
        count: int,
    ) -> pa.Table:
        if count == 0:
            return QUARANTINE_SCHEMA.empty_table()
        # Work on the few bad rows only: first rule broken, its column and raw value, how many rules.
        where = pc.indices_nonzero(bad)
        rule = pa.nulls(count, pa.string())
        column = pa.nulls(count, pa.string())
        value = pa.nulls(count, pa.string())
        violation_count = pa.array(np.zeros(count, dtype=np.int32))
        for violation in violations:
            mask = pc.take(violation.mask, where)
            first = pc.and_(mask, pc.is_null(rule))
            rule = pc.if_else(first, pa.scalar(violation.rule), rule)
            column = pc.if_else(first, pa.scalar(violation.column, pa.string()), column)
            if violation.column in raw_values:
                value = pc.if_else(first, pc.take(raw_values[violation.column], where), value)
            violation_count = pc.add(violation_count, pc.cast(mask, pa.int32()))
        records = [json.dumps(r, ensure_ascii=False) for r in batch.take(where).to_pylist()]
        return pa.table(
            {
                "partition_date": _constant(self.partition_date, pa.date32(), count),
                "_source_file": _constant(self.source_file, pa.string(), count),
                "_source_line": pc.take(lines, where),
                "rule": rule,
                "column": column,
                "value": value,
                "violations": violation_count,
                "record": pa.array(records, pa.string()),
                "_contract_version": _constant(self.dataset.version, pa.string(), count),
            },
            schema=QUARANTINE_SCHEMA,
        )


def evaluate_stream(
    evaluator: ContractEvaluator,
    batches: Iterable[tuple[pa.RecordBatch, int]],
    *,
    collect: bool = True,
    workers: int = EVALUATION_THREADS,
) -> Iterator[BatchResult]:
    """Evaluate a file's batches in order, ``workers`` at a time.

    Arrow's compute kernels release the GIL, so batches evaluated on threads use every core while the
    CSV reader parses ahead. At most ``workers + 1`` batches are in flight, which keeps memory bounded
    by the batch size. Contracts with per-file state (uniqueness within a file) run one at a time.
    """
    if workers <= 1 or not evaluator.parallel_safe:
        for batch, first_line in batches:
            yield evaluator.evaluate(batch, first_line, collect=collect)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="contract") as pool:
        pending: deque[Future[BatchResult]] = deque()
        for batch, first_line in batches:
            pending.append(pool.submit(evaluator.evaluate, batch, first_line, collect=collect))
            if len(pending) > workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


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
            is_true = pc.equal(value, pa.scalar(contract_field.true_value))
            typed = pc.if_else(known, is_true, pa.scalar(None, pa.bool_()))
        else:
            # index_in is null for a value outside the set, and take of a null index is null.
            canonical = pa.array([contract_field.canonical_state(s) for s in contract_field.states])
            typed = pc.take(canonical, pc.index_in(value, allowed))
    else:
        typed, refused = _typed(value, kind, contract_field.arrow_type)
        violations.append(Violation("type", name, refused))
        if contract_field.minimum is not None:
            below = pc.less(typed, pa.scalar(contract_field.minimum).cast(typed.type))
            violations.append(Violation("minimum", name, pc.fill_null(below, False)))
    return typed, violations


def _typed(value: pa.Array, kind: Kind, target: pa.DataType) -> tuple[pa.Array, pa.Array]:
    """Typed values and where a present value refused to type.

    The whole batch is cast first: almost always every value converts and nothing else is paid. Only
    when the cast refuses does the batch pay for the shape check (one regex) and, for values of the
    right shape that still do not convert, the per-value path.
    """
    try:
        return pc.cast(value, target), _all(len(value), False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    shaped = pc.match_substring_regex(value, _SHAPES[kind])
    candidate = pc.if_else(pc.fill_null(shaped, False), value, pa.nulls(len(value), pa.string()))
    typed, unconvertible = _cast_per_value_on_failure(candidate, target)
    return typed, pc.or_(_false_where(shaped), unconvertible)


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
    """Trimmed values, with empty and whitespace-only values as null."""
    trimmed = pc.utf8_trim_whitespace(raw)
    present = pc.greater(pc.utf8_length(trimmed), 0)
    if trimmed.null_count:
        present = pc.and_(present, pc.is_valid(trimmed))
    if trimmed.offset == 0 and present.offset == 0 and pa.types.is_string(trimmed.type):
        # Same offsets and characters, new validity bitmap: no copy of the strings.
        _, offsets, data = trimmed.buffers()
        return pa.Array.from_buffers(pa.string(), len(trimmed), [present.buffers()[1], offsets, data])
    return pc.if_else(present, trimmed, pa.scalar(None, pa.string()))


def _constant(value: object, type_: pa.DataType, rows: int) -> pa.Array:
    """A column holding one value: built by Arrow (no Python list of ``rows`` items)."""
    return pa.repeat(pa.scalar(value, type_), rows)


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
