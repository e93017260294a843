"""Turn all-string batches into typed, standardized rows, and split off the rows that break a rule.

This is the contract, executed. Each field's kind says how a trimmed string becomes a typed value and
each rule says which values are acceptable; a row that breaks any rule is quarantined with the first
rule it broke, the column and the offending raw value, never dropped. Everything is vectorized Arrow
compute (or numpy over Arrow's buffers) on one batch at a time: no step costs a Python call per row,
whether the batch is clean, holds a few bad values, or is mostly bad (a hostile file must be decided
with complete counts in about the time of a clean one).

How a typed kind is decided (``_typed``), the same way whatever else the batch holds:
1. the value's shape, one regular expression per field that also bounds decimal places and integer
   digits (``12.345`` is not a 2-place value; it is never rounded);
2. one cast of the values of the right shape; almost always it succeeds and that is all;
3. only when a value of the right shape names nothing (month 13, hour 25, 30 February, an integer
   beyond 64 bits) does the batch pay for a component check: the digits are read straight from the
   string buffer at their fixed positions with numpy and checked against the calendar and the int64
   range, then the possible values are cast once more;
4. should that cast still refuse (a case the component check does not know), the refusing values are
   found by casting halves, so the cost is bounded by the number of bad values times log2(batch),
   never a pass per value over the batch. ``BatchResult.per_value_casts`` counts values cast alone.

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
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from customer360.contracts.model import Dataset, Field, Kind
from customer360.contracts.schemas import (
    CONTRACT_VERSION,
    E164_PATTERN,
    PARTITION_COLUMN,
    QUARANTINE_SCHEMA,
    RESCUED_DATA,
    SOURCE_FILE,
    SOURCE_LINE,
    clean_schema,
)
from customer360.processing.formats import FormatError

INT_SHAPE = r"^[+-]?[0-9]+$"
DATE_SHAPE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
# ISO-8601 with a UTC offset: a date, 'T' or a space, hours and minutes, optional seconds with at most
# 6 fractional digits (clean stores microseconds; more would be rounded), then Z, +HH, +HHMM or +HH:MM.
TIMESTAMP_SHAPE = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,6})?)?"
    r"(?:Z|[+-][0-9]{2}(?::?[0-9]{2})?)$"
)
# Digits of the largest int64 and of the magnitude of the smallest: compared as text, never parsed.
_INT64_MAX_DIGITS = "9223372036854775807"
_INT64_MIN_DIGITS = "9223372036854775808"
_DAYS_IN_MONTH = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int16)
_JSON_CONTROL = r"[\x00-\x1f]"
_SPACE_OR_CONTROL, _NOT_ASCII = 0x20, 0x80  # a value ending in such a byte may have something to trim
SAMPLE_ROWS = 20
EVALUATION_THREADS = min(4, os.cpu_count() or 1)


def decimal_shape(precision: int, scale: int) -> str:
    """A plain decimal with at most ``scale`` digits after the point and ``precision - scale`` before it.

    Leading zeros do not count (Arrow's cast ignores them too). No exponent, no thousands separator.
    """
    whole = rf"0*[0-9]{{1,{precision - scale}}}" if precision > scale else "0+"
    if not scale:
        return rf"^[+-]?{whole}\.?$"
    return rf"^[+-]?(?:{whole}(?:\.[0-9]{{0,{scale}}})?|\.[0-9]{{1,{scale}}})$"


@cache
def shape_of(contract_field: Field) -> str:
    """The full-match regular expression a typed field's trimmed text must satisfy."""
    if contract_field.kind is Kind.DECIMAL:
        return decimal_shape(contract_field.precision, contract_field.scale)
    return {Kind.INT: INT_SHAPE, Kind.DATE: DATE_SHAPE, Kind.TIMESTAMP: TIMESTAMP_SHAPE}[contract_field.kind]


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
    quarantine: pa.Table | None  # the rows that broke a rule, with their raw record; None for counts only
    rule_counts: dict[str, int] = field(default_factory=dict)
    samples: list[dict[str, object]] = field(default_factory=list)  # the batch's first bad rows
    per_value_casts: int = 0  # values that had to be cast alone (see the module docstring, step 4)

    @property
    def quarantined_rows(self) -> int:
        return self.rows - self.clean_rows


@dataclass
class FileStats:
    rows: int = 0
    clean_rows: int = 0
    quarantined_rows: int = 0
    rule_counts: dict[str, int] = field(default_factory=dict)
    samples: list[dict[str, object]] = field(default_factory=list)
    rescued_columns: tuple[str, ...] = ()
    per_value_casts: int = 0

    def add(self, result: BatchResult, max_samples: int = SAMPLE_ROWS) -> None:
        self.clean_rows += result.clean_rows
        self.quarantined_rows += result.quarantined_rows
        self.rows += result.rows
        self.per_value_casts += result.per_value_casts
        for rule, count in result.rule_counts.items():
            self.rule_counts[rule] = self.rule_counts.get(rule, 0) + count
        room = max_samples - len(self.samples)
        if room > 0:
            self.samples.extend(result.samples[:room])


class ContractEvaluator:
    """Evaluates one file's batches against a dataset contract. One instance per file (uniqueness is per file)."""

    def __init__(self, dataset: Dataset, header: list[str], source_file: str, partition_date: date) -> None:
        self.dataset = dataset
        self.header = header
        self.source_file = source_file
        self.partition_date = partition_date
        self._known = frozenset(dataset.source_names)
        # Insertion-ordered set of the fields outside the contract seen so far (a dict: O(1) membership,
        # so a file with thousands of unknown fields costs linear time, not quadratic).
        self._rescued: dict[str, None] = dict.fromkeys(name for name in header if name not in self._known)
        self._seen: dict[str, set[str]] = {f.name: set() for f in dataset.fields if f.unique_in_file}
        self._schema = clean_schema(dataset)

    @property
    def rescued_columns(self) -> tuple[str, ...]:
        """Fields the contract does not know, in order of first appearance (kept in ``_rescued_data``)."""
        return tuple(self._rescued)

    def evaluate(self, batch: pa.RecordBatch, lines: int | pa.Array, *, collect: bool = True) -> BatchResult:
        """Type and check one batch. ``collect=False`` only counts (the gate): no clean rows, no quarantine.

        ``lines`` is the physical source line of each row (as the readers give it), or the first row's
        line when the rows sit on consecutive lines.

        Safe to call from several threads at once for different batches, except for contracts with
        ``unique_in_file`` fields, whose duplicates depend on batch order (see ``parallel_safe``).
        """
        if batch.num_columns > self.dataset.max_columns:
            # A JSON Lines file may grow its field set mid-file; the gate checked only the first line's.
            first_line = lines if isinstance(lines, int) else lines[0].as_py()
            raise FormatError(
                "too_many_columns",
                f"line {first_line}: {batch.num_columns:,} fields by this point; the {self.dataset.name} contract "
                f"accepts at most {self.dataset.max_columns} (unknown fields are kept per row in _rescued_data)",
                line=first_line,
            )
        rows = batch.num_rows
        present = set(batch.schema.names)
        typed: dict[str, pa.Array] = {}
        raw_values: dict[str, pa.Array] = {}
        violations: list[Violation] = []
        per_value_casts = 0
        for contract_field in self.dataset.fields:
            if contract_field.source_name not in present:
                typed[contract_field.name] = pa.nulls(rows, contract_field.arrow_type)
                if contract_field.required:
                    violations.append(Violation("required", contract_field.name, _all(rows, True)))
                continue
            raw = batch.column(contract_field.source_name)
            value = _trimmed_or_null(raw)
            raw_values[contract_field.name] = value
            converted = _convert(contract_field, value)
            typed[contract_field.name] = converted.values
            violations.extend(converted.violations)
            per_value_casts += converted.per_value_casts
            if contract_field.unique_in_file:
                violations.append(self._duplicates(contract_field, value))
        violations.extend(self._row_rule_violations(typed, rows))
        # Only rules some row broke matter from here on; on a clean batch that is none of them.
        violations = [v for v in violations if v.mask.true_count]
        bad = _any(violations, rows)
        bad_rows = bad.true_count if violations else 0
        if isinstance(lines, int):
            lines = pa.array(np.arange(lines, lines + rows, dtype=np.int64))
        clean = None
        if collect:
            clean = self._clean_table(batch, typed, lines, pc.invert(bad) if bad_rows else None, rows)
        if not bad_rows:
            empty = QUARANTINE_SCHEMA.empty_table() if collect else None
            return BatchResult(rows, rows, clean, empty, per_value_casts=per_value_casts)
        where = pc.indices_nonzero(bad)
        verdicts = _first_rules(violations, raw_values, where, bad_rows)
        bad_lines = pc.take(lines, where)
        rule_counts = dict(zip(*_value_counts(verdicts.rule), strict=True))
        samples = [
            {"line": line, "rule": rule, "column": column, "value": value}
            for line, rule, column, value in zip(
                bad_lines.slice(0, SAMPLE_ROWS).to_pylist(),
                verdicts.rule.slice(0, SAMPLE_ROWS).to_pylist(),
                verdicts.column.slice(0, SAMPLE_ROWS).to_pylist(),
                verdicts.value.slice(0, SAMPLE_ROWS).to_pylist(),
                strict=True,
            )
        ]
        quarantine = self._quarantine_table(batch, verdicts, where, bad_lines, bad_rows) if collect else None
        return BatchResult(rows, rows - bad_rows, clean, quarantine, rule_counts, samples, per_value_casts)

    @property
    def parallel_safe(self) -> bool:
        """Whether batches may be evaluated concurrently (no per-file state carried between batches)."""
        return not self._seen

    def _duplicates(self, contract_field: Field, value: pa.Array) -> Violation:
        """Second and later occurrences of a value within the file (batches arrive in file order).

        Within the batch, first occurrences come from a dictionary encoding (vectorized); against earlier
        batches, the batch's distinct values meet the file's set in one C-level set operation. Memory
        grows with the distinct keys of one file, which a key that must be unique per file implies.
        """
        seen = self._seen[contract_field.name]
        rows = len(value)
        if value.null_count == rows:
            return Violation("unique_in_file", contract_field.name, _all(rows, False))
        encoded = pc.dictionary_encode(value)
        # A null value has a null code (never a repeat); 0 stands in for it and is masked out below.
        codes = pc.fill_null(encoded.indices, 0).to_numpy(zero_copy_only=False)
        distinct = encoded.dictionary.to_pylist()
        present = np.flatnonzero(pc.is_valid(value).to_numpy(zero_copy_only=False))
        repeated = np.zeros(rows, dtype=bool)
        repeated[present] = True
        repeated[present[np.unique(codes[present], return_index=True)[1]]] = False
        earlier = seen.intersection(distinct)
        seen.update(distinct)
        if earlier:
            seen_before = pc.is_in(encoded.dictionary, pa.array(list(earlier), pa.string())).to_numpy(
                zero_copy_only=False
            )
            repeated[present[seen_before[codes[present]]]] = True
        return Violation("unique_in_file", contract_field.name, pa.array(repeated))

    def _row_rule_violations(self, typed: dict[str, pa.Array], rows: int) -> list[Violation]:
        found = []
        for rule in self.dataset.row_rules:
            applies = _all(rows, True)
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
        varying = {**typed, SOURCE_LINE: lines, RESCUED_DATA: self._rescued_data(batch, rows)}
        if good is not None:  # only the columns that vary are filtered; the lineage constants are built to size
            kept = pa.table(varying).filter(good)
            varying, rows = dict(zip(kept.column_names, kept.columns, strict=True)), kept.num_rows
        constants = {
            PARTITION_COLUMN: _constant(self.partition_date, pa.date32(), rows),
            SOURCE_FILE: _constant(self.source_file, pa.string(), rows),
            CONTRACT_VERSION: _constant(self.dataset.version, pa.string(), rows),
        }
        columns = [varying[f.name] if f.name in varying else constants[f.name] for f in self._schema]
        return pa.Table.from_arrays(columns, schema=self._schema)

    def _rescued_data(self, batch: pa.RecordBatch, rows: int) -> pa.Array:
        """Fields the contract does not know yet, kept as one JSON object per row, never dropped.

        Read from each batch, not only the header: a JSON Lines file may introduce a key mid-file.
        Built by Arrow string kernels, column by column: linear in rows times unknown fields.
        """
        names = batch.schema.names
        unknown = [i for i, name in enumerate(names) if name not in self._known]
        if not unknown:
            return pa.nulls(rows, pa.string())
        for i in unknown:
            self._rescued.setdefault(names[i], None)
        return json_objects([names[i] for i in unknown], [batch.column(i) for i in unknown])

    def _quarantine_table(
        self, batch: pa.RecordBatch, verdicts: _Verdicts, where: pa.Array, lines: pa.Array, count: int
    ) -> pa.Table:
        bad = batch.take(where)
        return pa.table(
            {
                PARTITION_COLUMN: _constant(self.partition_date, pa.date32(), count),
                SOURCE_FILE: _constant(self.source_file, pa.string(), count),
                SOURCE_LINE: lines,
                "rule": verdicts.rule,
                "column": verdicts.column,
                "value": verdicts.value,
                "violations": verdicts.count,
                "record": json_objects(bad.schema.names, bad.columns),
                CONTRACT_VERSION: _constant(self.dataset.version, pa.string(), count),
            },
            schema=QUARANTINE_SCHEMA,
        )


class _Verdicts(NamedTuple):
    """Per bad row: the first rule it broke, on which column, the offending value, how many rules in all."""

    rule: pa.Array
    column: pa.Array
    value: pa.Array
    count: pa.Array


def _first_rules(
    violations: list[Violation], raw_values: dict[str, pa.Array], where: pa.Array, count: int
) -> _Verdicts:
    """Work on the bad rows only: which rules each one broke (a rules x bad rows matrix in numpy), the first
    of them in the order the rules were found, and its offending value (one take per column)."""
    at = where.to_numpy()
    broken = np.stack([_bools(pc.take(violation.mask, where)) for violation in violations])
    first = broken.argmax(axis=0)
    names = [v.column for v in violations]
    rule = pc.take(pa.array([v.rule for v in violations], pa.string()), pa.array(first))
    column = pc.take(pa.array(names, pa.string()), pa.array(first))
    # The offending value: taken from each column some row's first rule names, then put in row order.
    first_column = np.array([names.index(name) for name in names])[first]
    pieces: list[pa.Array] = []
    placed: list[np.ndarray] = []
    for name in dict.fromkeys(name for name in names if name in raw_values):
        rows = np.flatnonzero(first_column == names.index(name))
        pieces.append(pc.take(raw_values[name], pa.array(at[rows])).cast(pa.string()))
        placed.append(rows)
    gathered = pa.concat_arrays([*pieces, pa.nulls(1, pa.string())])
    order = np.full(count, len(gathered) - 1, dtype=np.int64)  # the trailing null: a rule without a value
    positions = np.concatenate([*placed, np.zeros(0, np.int64)])
    order[positions] = np.arange(len(positions))
    value = pc.take(gathered, pa.array(order))
    return _Verdicts(rule, column, value, pa.array(broken.sum(axis=0, dtype=np.int32)))


def _bools(mask: pa.Array) -> np.ndarray:
    """A boolean mask as numpy; null (a rule that could not be judged) is False."""
    return (pc.fill_null(mask, False) if mask.null_count else mask).to_numpy(zero_copy_only=False)


def evaluate_stream(
    evaluator: ContractEvaluator,
    batches: Iterable[tuple[pa.RecordBatch, int | pa.Array]],
    *,
    collect: bool | Callable[[], bool] = True,
    workers: int = EVALUATION_THREADS,
) -> Iterator[BatchResult]:
    """Evaluate a file's batches in order, ``workers`` at a time.

    ``collect`` (see ``ContractEvaluator.evaluate``) may be a function, asked as each batch is submitted:
    the gate builds clean rows only while it still keeps them.

    Arrow's compute kernels release the GIL, so batches evaluated on threads use every core while the
    CSV reader parses ahead. At most ``workers + 1`` batches are in flight, which keeps memory bounded
    by the batch size. Contracts with per-file state (uniqueness within a file) run one at a time.
    """
    wanted = collect if callable(collect) else lambda: collect
    if workers <= 1 or not evaluator.parallel_safe:
        for batch, first_line in batches:
            yield evaluator.evaluate(batch, first_line, collect=wanted())
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="contract") as pool:
        pending: deque[Future[BatchResult]] = deque()
        for batch, first_line in batches:
            pending.append(pool.submit(evaluator.evaluate, batch, first_line, collect=wanted()))
            if len(pending) > workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


class Converted(NamedTuple):
    values: pa.Array
    violations: list[Violation]
    per_value_casts: int = 0


def _convert(contract_field: Field, value: pa.Array) -> Converted:
    """Typed values for one field, and the violations its values commit."""
    violations: list[Violation] = []
    per_value_casts = 0
    name = contract_field.name
    if contract_field.required:
        violations.append(Violation("required", name, pc.is_null(value)))
    kind = contract_field.kind
    if kind in (Kind.TEXT, Kind.LOWER_TEXT):
        typed = pc.utf8_lower(value) if kind is Kind.LOWER_TEXT else value
        if contract_field.full_pattern:
            matches = pc.match_substring_regex(value, contract_field.full_pattern)
            violations.append(Violation("pattern", name, _false_where(matches)))
    elif kind is Kind.PHONE:
        digits = pc.replace_substring_regex(value, r"[\s\-().]", "")
        digits = pc.replace_substring_regex(digits, r"^00", "+")
        ok = pc.match_substring_regex(digits, E164_PATTERN)
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
        typed, refused, per_value_casts = typed_values(value, contract_field)
        violations.append(Violation("type", name, refused))
        if contract_field.minimum is not None:
            below = pc.less(typed, pa.scalar(contract_field.minimum).cast(typed.type))
            violations.append(Violation("minimum", name, pc.fill_null(below, False)))
    return Converted(typed, violations, per_value_casts)


class Typed(NamedTuple):
    values: pa.Array  # null where the value is null or refused
    refused: pa.Array  # True where a present value could not be typed
    per_value_casts: int  # values cast alone to find a refusal (0 unless step 4 of the docstring ran)


def typed_values(value: pa.Array, contract_field: Field) -> Typed:
    """A trimmed string column typed per its field (INT, DECIMAL, DATE, TIMESTAMP); see the module docstring."""
    target, rows = contract_field.arrow_type, len(value)
    if value.null_count == rows:
        return Typed(pa.nulls(rows, target), _all(rows, False), 0)
    misshapen = _false_where(pc.match_substring_regex(value, shape_of(contract_field)))
    candidate = pc.if_else(misshapen, pa.scalar(None, value.type), value) if misshapen.true_count else value
    try:
        return Typed(pc.cast(candidate, target), misshapen, 0)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    # A value of the right shape names nothing: find it from its components, without a per-value pass.
    if contract_field.kind is Kind.INT:
        impossible, candidate = _int64_impossible(candidate)
    elif contract_field.kind in (Kind.DATE, Kind.TIMESTAMP):
        impossible = _calendar_impossible(candidate, with_time=contract_field.kind is Kind.TIMESTAMP)
    else:
        impossible = _all(rows, False)  # the decimal shape already bounds digits and places
    refused = pc.or_(misshapen, impossible)
    if impossible.true_count:
        candidate = pc.if_else(impossible, pa.scalar(None, candidate.type), candidate)
    try:
        return Typed(pc.cast(candidate, target), refused, 0)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    typed, unconvertible, alone = _cast_bisecting(candidate, target)
    return Typed(typed, pc.or_(refused, unconvertible), alone)


def _int64_impossible(values: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Integers of the right shape beyond the int64 range, and the values normalized for the cast.

    Only a value of 19 characters or more can overflow: those few are compared as digit strings (sign
    and leading zeros dropped) with the int64 bounds, never parsed. A leading ``+`` (which Arrow's cast
    refuses) is dropped from the values that carry one.
    """
    rows = len(values)
    impossible = _all(rows, False)
    long = pc.fill_null(pc.greater_equal(pc.binary_length(values), 19), False)
    if long.true_count:
        where = pc.indices_nonzero(long)
        subset = pc.take(values, where)
        negative = pc.starts_with(subset, "-")
        digits = pc.replace_substring_regex(subset, r"^[+-]?0*", "")
        length = pc.binary_length(digits)
        limit = pc.if_else(negative, pa.scalar(_INT64_MIN_DIGITS), pa.scalar(_INT64_MAX_DIGITS))
        fits = pc.or_(pc.less(length, 19), pc.and_(pc.equal(length, 19), pc.less_equal(digits, limit)))
        mask = np.zeros(rows, dtype=bool)
        mask[where.to_numpy()[~fits.to_numpy(zero_copy_only=False)]] = True
        impossible = pa.array(mask)
    plus = pc.fill_null(pc.starts_with(values, "+"), False)
    if plus.true_count:
        values = pc.if_else(plus, pc.utf8_slice_codeunits(values, 1), values)
    return impossible, values


def _calendar_impossible(values: pa.Array, *, with_time: bool) -> pa.Array:
    """Dates and timestamps of the right shape that name no instant: month 13, 30 February, 29 February
    of a common year, hour 24, minute or second 60, an offset of 24 hours or 60 minutes.

    The shape fixes where each component sits (and that every character is ASCII), so its digits are
    read straight from the string buffer with numpy, for every row at once.
    """
    rows = len(values)
    valid = pc.is_valid(values).to_numpy(zero_copy_only=False)
    where = np.flatnonzero(valid)
    impossible = np.zeros(rows, dtype=bool)
    if not len(where):
        return pa.array(impossible)
    offsets_type = np.int64 if pa.types.is_large_string(values.type) else np.int32
    _, offsets_buffer, data_buffer = values.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=offsets_type)[values.offset : values.offset + rows + 1]
    data = np.frombuffer(data_buffer, dtype=np.uint8)
    start = offsets[where].astype(np.intp)
    end = offsets[where + 1].astype(np.intp)

    def two(at: np.ndarray) -> np.ndarray:
        """The two-digit numbers at ``at``, in 16 bits (the digits are the shape's: never more than 99)."""
        return data[at].astype(np.int16) * 10 + data[at + 1] - 11 * ord("0")

    year = two(start).astype(np.int32) * 100 + two(start + 2)
    month, day = two(start + 5), two(start + 8)
    leap = ((year % 4 == 0) & (year % 100 != 0)) | (year % 400 == 0)
    month_ok = (month >= 1) & (month <= 12)
    days = _DAYS_IN_MONTH[np.where(month_ok, month, 0)] + ((month == 2) & leap)
    ok = month_ok & (day >= 1) & (day <= days)
    if with_time:
        ok &= (two(start + 11) <= 23) & (two(start + 14) <= 59)
        has_seconds = data[start + 16] == ord(":")
        ok &= ~has_seconds | (two(np.where(has_seconds, start + 17, start)) <= 59)
        # Zone: Z, +HH:MM (':' three from the end), +HH (sign three from the end) or +HHMM.
        third_last = data[end - 3]
        colon = third_last == ord(":")
        hours_only = (third_last == ord("+")) | (third_last == ord("-"))
        zone_hours = two(np.where(colon, end - 5, np.where(hours_only, end - 2, end - 4)))
        zone_minutes = np.where(hours_only, 0, two(end - 2))
        ok &= (data[end - 1] == ord("Z")) | ((zone_hours <= 23) & (zone_minutes <= 59))
    impossible[where] = ~ok
    return pa.array(impossible)


def _cast_bisecting(values: pa.Array, target: pa.DataType) -> tuple[pa.Array, pa.Array, int]:
    """Cast, finding the values that refuse by casting halves: the last resort for a refusal the component
    checks do not foresee. Costs about log2(rows) casts per refusing value, never one per row."""
    pieces: list[pa.Array] = []
    refused = np.zeros(len(values), dtype=bool)
    alone = 0

    def cast_range(low: int, high: int) -> None:
        nonlocal alone
        try:
            pieces.append(pc.cast(values.slice(low, high - low), target))
            alone += high - low == 1
            return
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            if high - low == 1:
                alone += 1
                refused[low] = True
                pieces.append(pa.nulls(1, target))
                return
        middle = (low + high) // 2
        cast_range(low, middle)
        cast_range(middle, high)

    cast_range(0, len(values))
    return pa.concat_arrays(pieces), pa.array(refused), alone


def json_objects(names: Sequence[str], columns: Sequence[pa.Array]) -> pa.Array:
    """One JSON object per row from string columns (null -> ``null``), built by Arrow string kernels.

    The text ``json.dumps`` would give (compact separators), without a Python call per row, and with
    a fixed number of kernel calls however many columns: the cells are escaped as one array, paired
    with their keys, reordered row by row and joined per row (cost linear in rows times columns).
    """
    rows, width = (len(columns[0]) if columns else 0), len(columns)
    if not width:
        return pa.repeat(pa.scalar("{}"), rows)
    cells = pc.fill_null(_json_string(pa.concat_arrays([_as_string(c) for c in columns])), "null")
    keys = pa.array([json.dumps(name, ensure_ascii=False) + ":" for name in names])
    # Column-major: cell j * rows + r is column j of row r; row-major order is r * width + j.
    column_of = np.repeat(np.arange(width, dtype=np.int64), rows)
    pairs = pc.binary_join_element_wise(keys.take(pa.array(column_of)), cells, "")
    row_major = (np.arange(width, dtype=np.int64)[None, :] * rows + np.arange(rows, dtype=np.int64)[:, None]).ravel()
    per_row = pa.ListArray.from_arrays(
        pa.array(np.arange(0, rows * width + 1, width, dtype=np.int32)), pairs.take(pa.array(row_major))
    )
    return pc.binary_join_element_wise("{", pc.binary_join(per_row, ","), "}", "")


def _as_string(column: pa.Array) -> pa.Array:
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    return column if pa.types.is_string(column.type) else pc.cast(column, pa.string())


def _json_string(column: pa.Array) -> pa.Array:
    """JSON string literals of a string column; null stays null."""
    escaped = pc.replace_substring(pc.replace_substring(column, "\\", "\\\\"), '"', '\\"')
    if pc.any(pc.match_substring_regex(escaped, _JSON_CONTROL)).as_py():
        for code in range(0x20):
            escaped = pc.replace_substring(escaped, chr(code), json.dumps(chr(code))[1:-1])
    return pc.binary_join_element_wise('"', escaped, '"', "")


def _trimmed_or_null(raw: pa.Array) -> pa.Array:
    """Trimmed values, with empty and whitespace-only values as null."""
    untouched = _untrimmed_or_null(raw)
    if untouched is not None:
        return untouched
    trimmed = pc.utf8_trim_whitespace(raw)
    present = pc.greater(pc.utf8_length(trimmed), 0)
    if trimmed.null_count:
        present = pc.and_(present, pc.is_valid(trimmed))
    if trimmed.offset == 0 and present.offset == 0 and pa.types.is_string(trimmed.type):
        return _valid_where(trimmed, present.buffers()[1])
    return pc.if_else(present, trimmed, pa.scalar(None, pa.string()))


def _valid_where(strings: pa.Array, bitmap: pa.Buffer) -> pa.Array:
    """``strings`` null where ``bitmap`` (counted from the buffers' start) says: same offsets and characters,
    a new validity bitmap, no copy of the strings."""
    _, offsets, data = strings.buffers()
    return pa.Array.from_buffers(pa.string(), len(strings), [bitmap, offsets, data], offset=strings.offset)


def _untrimmed_or_null(raw: pa.Array) -> pa.Array | None:
    """``raw`` with empty values as null, when trimming would change no value (else None: trim).

    Most values have nothing to trim, and trimming copies every string of the column: reading each value's
    first and last byte (numpy, over the offsets) decides whether any value could start or end with
    whitespace. Any byte below ``!`` (ASCII whitespace, controls) or above ASCII (Unicode spaces are
    multi-byte) at either end sends the column through the trim; the strings themselves are never copied.
    """
    if not pa.types.is_string(raw.type) or not len(raw):
        return None
    _, offsets_buffer, data_buffer = raw.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=np.int32)[raw.offset : raw.offset + len(raw) + 1]
    starts, ends = offsets[:-1], offsets[1:]
    filled = ends > starts
    if filled.any():
        data = np.frombuffer(data_buffer, dtype=np.uint8)
        edges = np.concatenate((data[starts[filled]], data[ends[filled] - 1]))
        if ((edges <= _SPACE_OR_CONTROL) | (edges >= _NOT_ASCII)).any():
            return None
    present = filled if not raw.null_count else filled & pc.is_valid(raw).to_numpy(zero_copy_only=False)
    if raw.offset:  # the bitmap, like the offsets and data, counts from the buffers' start
        present = np.concatenate((np.zeros(raw.offset, dtype=bool), present))
    return _valid_where(raw, pa.py_buffer(np.packbits(present, bitorder="little")))


def _constant(value: object, type_: pa.DataType, rows: int) -> pa.Array:
    """A column holding one value: built by Arrow (no Python list of ``rows`` items)."""
    return pa.repeat(pa.scalar(value, type_), rows)


def _false_where(matches: pa.Array) -> pa.Array:
    """A present value that fails the predicate; null values are judged by 'required', not here."""
    return pc.fill_null(pc.invert(matches), False)


def _all(rows: int, value: bool) -> pa.Array:
    return pa.repeat(pa.scalar(value, pa.bool_()), rows)


def _any(violations: list[Violation], rows: int) -> pa.Array:
    bad = _all(rows, False)
    for violation in violations:
        bad = pc.or_(bad, violation.mask)
    return bad


def _value_counts(column: pa.Array) -> tuple[list[str], list[int]]:
    counts = pc.value_counts(column)
    return counts.field("values").to_pylist(), counts.field("counts").to_pylist()
