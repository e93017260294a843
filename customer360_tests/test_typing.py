"""Typing costs a few vectorized passes per batch whatever the batch holds, and decides every value alone.

A feed with bad rows scattered through it has one in nearly every batch. Typing must then cost what a
clean batch costs plus work bounded by the bad values (never a per-value pass over the batch), and a
value's verdict must not depend on which other values share its batch. The component checks (calendar,
int64 range, decimal places) are held against Arrow's own per-value cast on thousands of generated
values of the right shape, so the last-resort path (casting halves) has nothing left to find.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pyarrow.compute
import pytest

from customer360.contracts import DATASETS, Dataset, Field, Kind
from customer360.lake.ledger import ARCHIVED, REJECTED, Ledger
from customer360.lake.store import LakeStore
from customer360.processing.standardize import ContractEvaluator, json_objects, typed_values
from customer360.steps.clean import clean_partition, read_clean, read_quarantine
from customer360.steps.gate import run_gate
from customer360_tests.corpus import event as corpus_event

DAY = date(2024, 1, 1)
TYPED = Dataset(
    name="typed",
    version="0.0.1",
    description="one field of each typed kind",
    staging_name="typed",
    fields=(
        Field("n", Kind.INT),
        Field("amount", Kind.DECIMAL, precision=14, scale=4),
        Field("day", Kind.DATE),
        Field("at", Kind.TIMESTAMP),
    ),
)
GOOD = {"n": "42", "amount": "0.0808", "day": "2024-02-29", "at": "2024-03-01T13:45:00+01:00"}
# One value of the right shape that names nothing, per typed kind and way of being impossible.
UNTYPEABLE = [
    ("at", "2024-13-01T10:00:00Z"),  # month 13
    ("at", "2024-01-01T25:00:00Z"),  # hour 25
    ("at", "2024-01-01T10:61:00+00:00"),  # minute 61
    ("at", "2024-01-01T10:00:60Z"),  # second 60
    ("at", "2023-02-29T10:00:00+02:00"),  # 29 February of a common year
    ("at", "2024-04-31 10:00Z"),  # 31 April
    ("at", "2024-01-01T10:00:00+24:00"),  # offset of a whole day
    ("day", "2023-02-29"),
    ("day", "1900-02-29"),  # a century is a common year
    ("day", "2024-00-10"),
    ("n", "9223372036854775808"),  # int64 max + 1
    ("n", "-9223372036854775809"),  # int64 min - 1
    ("n", "18446744073709551616"),  # 2^64
    ("amount", "1.23456"),  # 5 places of a 4-place decimal: never rounded
    ("amount", "12345678901.5"),  # 11 whole digits of a (14, 4) decimal
]


def batch_of(rows: list[dict[str, str]]) -> pa.RecordBatch:
    names = list(rows[0])
    return pa.RecordBatch.from_pydict({n: pa.array([r[n] for r in rows], pa.string()) for n in names})


def test_a_batch_holding_one_untypeable_value_of_each_kind_is_typed_without_a_per_value_pass(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rows = [dict(GOOD) for _ in range(20_000)]
    bad_at = np.linspace(7, len(rows) - 7, len(UNTYPEABLE)).astype(int)
    for position, (source, value) in zip(bad_at, UNTYPEABLE, strict=True):
        rows[position][source] = value
    casts: list[int] = []
    real_cast = pyarrow.compute.cast

    def counting_cast(values, *args, **kwargs):  # type: ignore[no-untyped-def]
        if isinstance(values, pa.Array):  # scalars (a rule's bound) are not values of the batch
            casts.append(len(values))
        return real_cast(values, *args, **kwargs)

    monkeypatch.setattr(pyarrow.compute, "cast", counting_cast)
    result = ContractEvaluator(TYPED, list(GOOD), "typed.csv", DAY).evaluate(batch_of(rows), 2)

    quarantined = result.quarantine.to_pylist()
    assert [(q["_source_line"], q["rule"], q["column"], q["value"]) for q in quarantined] == [
        (int(position) + 2, "type", source, value) for position, (source, value) in zip(bad_at, UNTYPEABLE, strict=True)
    ]
    assert result.clean_rows == len(rows) - len(UNTYPEABLE)
    assert result.clean.column("at")[0].as_py() == datetime(2024, 3, 1, 12, 45, tzinfo=UTC)
    # Bounded by the typed columns, not by the batch: at most three casts per column (the batch, the
    # values left after the component check, and nothing else), none of them of a single value.
    assert result.per_value_casts == 0
    assert len(casts) <= 3 * len(TYPED.fields), casts
    assert min(casts) > 1 and sum(casts) <= 3 * len(TYPED.fields) * len(rows)


@pytest.mark.parametrize(
    ("source", "raw", "expected"),
    [
        ("n", "9223372036854775807", 9223372036854775807),
        ("n", "-9223372036854775808", -9223372036854775808),
        ("n", "+5", 5),
        ("n", "-0", 0),
        ("n", "0000000000000000000000012", 12),
        ("amount", "0000000000000012.5", Decimal("12.5000")),
        ("amount", ".5", Decimal("0.5000")),
        ("amount", "5.", Decimal("5.0000")),
        ("amount", "9999999999.9999", Decimal("9999999999.9999")),
        ("day", "2000-02-29", date(2000, 2, 29)),
        ("at", "2024-02-29 23:59:59.999999-05:00", datetime(2024, 3, 1, 4, 59, 59, 999999, tzinfo=UTC)),
        ("at", "2024-01-01T00:30+0130", datetime(2023, 12, 31, 23, 0, tzinfo=UTC)),
        ("at", "2024-01-01T10:00:00-03", datetime(2024, 1, 1, 13, 0, tzinfo=UTC)),
        ("at", "2024-01-01T10:00:00+23:59", datetime(2023, 12, 31, 10, 1, tzinfo=UTC)),
    ],
)
def test_edge_values_of_the_right_shape_are_typed_in_a_dirty_batch_too(source: str, raw: str, expected: object) -> None:
    """Next to an untypeable value of the same column (which forces the component path), and alone."""
    untypeable = next(value for column, value in UNTYPEABLE if column == source)
    for values in ([raw], [raw, untypeable]):
        result = ContractEvaluator(TYPED, list(GOOD), "t.csv", DAY).evaluate(
            batch_of([{**GOOD, source: value} for value in values]), 2
        )
        assert result.clean.column(TYPED.field(source).name)[0].as_py() == expected
        assert result.quarantined_rows == len(values) - 1


@pytest.mark.parametrize(
    ("source", "raw"),
    [
        ("n", "0x10"),  # Arrow's cast reads hex; the contract says a plain integer
        ("n", "1e3"),
        ("amount", "1e3"),  # Arrow's cast reads exponents; the contract says a plain decimal
        ("amount", "1.00000"),  # five places, even if only zeros: never rounded
        ("amount", "."),
        ("at", "2024-01-01T10Z"),  # Arrow reads an hour alone; the contract's shape has minutes
        ("at", "2024-01-01T10:00:00.1234567Z"),  # more than microseconds
        ("at", "2024-01-01T10:00:00"),  # no offset
    ],
)
def test_a_value_is_refused_alone_and_in_a_batch_alike(source: str, raw: str) -> None:
    """A verdict never depends on the batch: a clean batch once typed these by Arrow's looser grammar."""
    for neighbours in ([], [GOOD[source]] * 3, [next(v for c, v in UNTYPEABLE if c == source)]):
        rows = [{**GOOD, source: value} for value in [raw, *neighbours]]
        result = ContractEvaluator(TYPED, list(GOOD), "t.csv", DAY).evaluate(batch_of(rows), 2)
        first = result.quarantine.to_pylist()[0]
        assert (first["_source_line"], first["rule"], first["column"], first["value"]) == (2, "type", source, raw)


def random_shaped(kind: Kind, rng: np.random.Generator, count: int) -> list[str]:
    """Values of the contract's shape with components drawn a little beyond their valid ranges."""

    def two(high: int) -> np.ndarray:
        return rng.integers(0, high, count)

    year = rng.choice([1900, 1999, 2000, 2023, 2024, 2100, 2400, 9999, 1], count)
    month, day = two(15), two(34)
    dates = [f"{y:04d}-{m:02d}-{d:02d}" for y, m, d in zip(year, month, day, strict=True)]
    if kind is Kind.DATE:
        return dates
    if kind is Kind.TIMESTAMP:
        out = []
        for i, when in enumerate(dates):
            hour, minute, second = rng.integers(0, 26), rng.integers(0, 62), rng.integers(0, 62)
            time = f"{hour:02d}:{minute:02d}"
            if rng.random() < 0.7:
                time += f":{second:02d}" + (f".{rng.integers(0, 10**6):06d}"[: rng.integers(2, 8)] if i % 3 else "")
            zone_hour, zone_minute, sign = rng.integers(0, 26), rng.integers(0, 62), "+-"[i % 2]
            zone = ["Z", f"{sign}{zone_hour:02d}:{zone_minute:02d}", f"{sign}{zone_hour:02d}{zone_minute:02d}",
                    f"{sign}{zone_hour:02d}"][i % 4]  # fmt: skip
            out.append(f"{when}{'T '[i % 2]}{time}{zone}")
        return out
    if kind is Kind.INT:
        lengths = rng.integers(1, 23, count)
        return [
            "+-"[i % 2] * int(rng.random() < 0.5) + "0" * int(rng.integers(0, 3)) + str(rng.integers(1, 10))
            + "".join(map(str, rng.integers(0, 10, length - 1)))
            for i, length in enumerate(lengths)
        ]  # fmt: skip
    whole, places = rng.integers(0, 13, count), rng.integers(0, 6, count)
    return [
        "-" * int(i % 5 == 0) + "".join(map(str, rng.integers(0, 10, w))) + ("." if p or i % 7 == 0 else "")
        + "".join(map(str, rng.integers(0, 10, p)))
        for i, (w, p) in enumerate(zip(whole, places, strict=True))
        if w or p
    ]  # fmt: skip


def arrow_alone(value: str, field: Field) -> object:
    """What Arrow's own cast makes of one value alone (None if it refuses)."""
    try:
        return pyarrow.compute.cast(pa.array([value]), field.arrow_type)[0].as_py()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


@pytest.mark.parametrize("source", [f.source_name for f in TYPED.fields])
def test_component_checks_agree_with_arrows_own_cast_on_every_value_of_the_right_shape(source: str) -> None:
    field = TYPED.field(source)
    values = random_shaped(field.kind, np.random.default_rng(7), 4000)
    typed, refused, per_value = typed_values(pa.array(values), field)
    expected = [arrow_alone(v, field) for v in values]
    if field.kind is Kind.DECIMAL:  # the contract is stricter than Arrow: more places are refused, not padded
        expected = [
            e if len(v.partition(".")[2]) <= field.scale else None for v, e in zip(values, expected, strict=True)
        ]
    if field.kind is Kind.INT:  # Arrow refuses a leading '+'; the contract's plain integer allows it
        expected = [
            int(v) if v.startswith("+") and abs(int(v)) < 2**63 else e for v, e in zip(values, expected, strict=True)
        ]
    disagreements = [
        (v, got, want) for v, got, want in zip(values, typed.to_pylist(), expected, strict=True) if got != want
    ]
    assert not disagreements, disagreements[:10]
    assert refused.to_pylist() == [e is None for e in expected]
    assert per_value == 0, "the last-resort bisection found a refusal the component checks missed"
    assert 0 < refused.true_count < len(values), "the sample holds both kinds"


def test_quarantined_records_and_rescued_fields_are_the_raw_values_as_json() -> None:
    activity = DATASETS["activity_logs"]
    tricky = ['say "hi"', "back\\slash", "line\nbreak\ttab", "nul\x00bel\x07", "é中𝄞", "", "  padded  "]
    header = [*activity.source_names, "note", 'od"d']
    rows = []
    for i, text in enumerate(tricky):
        row = dict.fromkeys(header, "")
        row.update(event_id=f"e{i}", customer_id="7590-VHVEG", event_ts="2024-01-01T00:00:00Z", event_type="sms",
                   direction="in", roaming="false", charge_amount="-1" if i % 2 else "0.5", note=text,
                   **{'od"d': text[::-1]})  # fmt: skip
        rows.append(row)
    batch = pa.RecordBatch.from_pydict({n: pa.array([r[n] for r in rows], pa.string()) for n in header})

    result = ContractEvaluator(activity, header, "a.csv", DAY).evaluate(batch, 2)

    assert [json.loads(q["record"]) for q in result.quarantine.to_pylist()] == rows[1::2]
    rescued = [json.loads(r) for r in result.clean.column("_rescued_data").to_pylist()]
    assert rescued == [{"note": r["note"], 'od"d': r['od"d']} for r in rows[::2]]
    assert json_objects(["k"], [pa.array([None, "v"], pa.string())]).to_pylist() == ['{"k":null}', '{"k":"v"}']


HOSTILE_KINDS = {  # field index -> bad value, each breaking exactly one rule
    ("type", 2): "2024-13-01T10:00:00Z",
    ("type", 5): "99999999999999999999",
    ("type", 9): "0.12345",
    ("minimum", 5): "-60",
    ("allowed_values", 3): "mms",
    ("required", 1): "",
    ("pattern", 1): "7590VHVEG",
    ("duration_only_for_voice", 3): "sms",
}


def test_a_hostile_file_is_rejected_with_every_bad_row_counted_per_rule(lake: LakeStore) -> None:
    """40% bad rows in eight ways: the gate counts every one of them, by rule, not only the first ones."""
    good = ["", "7590-VHVEG", "2024-01-01T10:00:00+02:00", "voice", "out", "60", "", "C-1", "false", "0.0125"]
    lines, expected = [",".join(DATASETS["activity_logs"].source_names)], {}
    kinds = list(HOSTILE_KINDS.items())
    for i in range(2000):
        row = list(good)
        row[0] = f"e-{i}"
        if i % 5 < 2:  # two rows in five
            (rule, column), value = kinds[(i // 5 * 2 + i % 5) % len(kinds)]
            row[column] = value
            expected[rule] = expected.get(rule, 0) + 1
        lines.append(",".join(row))
    lake.put_bytes(f"raw/activity_logs/{DAY}/hostile.csv", ("\r\n".join(lines) + "\r\n").encode())

    assert not run_gate(lake, DATASETS["activity_logs"], DAY).errors

    (entry,) = Ledger(lake).entries("activity_logs", DAY)
    assert (entry.outcome, entry.reasons) == (REJECTED, ("too_many_bad_rows",))
    report = json.loads(lake.read_bytes(str(entry.report_key)))
    assert (report["rows"], report["bad_rows"]) == (2000, 800)
    assert report["rule_counts"] == expected and sum(expected.values()) == 800
    (failed,) = report["failed_checks"]
    assert failed["count"] == 800
    assert failed["samples"][0] == {"line": 2, "rule": "type", "column": "event_ts", "value": "2024-13-01T10:00:00Z"}


def test_unique_in_file_spans_batches_and_ignores_blank_keys() -> None:
    """A key seen in an earlier batch is a repeat; a blank key is 'required', never a repeat of another blank."""
    customers = DATASETS["customers"]
    from customer360_tests.test_standardize import valid_row

    evaluator = ContractEvaluator(customers, list(valid_row(customers)), "crm.csv", DAY)
    verdicts = []
    for first_line, ids in (
        (2, ["0001-AAAAA", "", "0001-AAAAA", "0002-AAAAA"]),
        (6, ["0002-AAAAA", "0003-AAAAA", " ", "0003-AAAAA"]),
    ):
        rows = [{**valid_row(customers), "customerID": i} for i in ids]
        quarantine = evaluator.evaluate(batch_of(rows), first_line).quarantine
        verdicts += list(zip(quarantine["_source_line"].to_pylist(), quarantine["rule"].to_pylist(), strict=True))
    assert verdicts == [
        (3, "required"),
        (4, "unique_in_file"),
        (6, "unique_in_file"),
        (8, "required"),
        (9, "unique_in_file"),
    ]


# How a number may be written in a typed activity field, per the contract: a plain integer or a plain
# decimal (no exponent, no hex), after trimming surrounding whitespace; a sign is part of a plain number.
# (column, as written, what clean holds, or None where the row is quarantined under the type rule)
WRITTEN_NUMBERS = [
    ("charge_amount", "1e5", None),
    ("charge_amount", "1E-3", None),
    ("charge_amount", "2.5e+1", None),
    ("charge_amount", "0x10", None),
    ("charge_amount", "1,5", None),
    ("charge_amount", "+0.5", Decimal("0.5")),
    ("charge_amount", "  0.0808 ", Decimal("0.0808")),
    ("data_mb", "1e3", None),
    ("duration_sec", "1e3", None),
    ("duration_sec", "1E3", None),
    ("duration_sec", "5.0", None),
    ("duration_sec", "+5", 5),
    ("duration_sec", " 5", 5),
    ("duration_sec", "5\t", 5),
]


def written_number_events(as_json_number: bool) -> tuple[list[dict[str, object]], dict[int, tuple[str, str, object]]]:
    """Good events with the written numbers spread among them, and per event's index what it carries."""
    events: list[dict[str, object]] = [
        {**corpus_event(i), "charge_amount": "0.0125", "duration_sec": "60", "roaming": "false"} for i in range(1000)
    ]
    expected: dict[int, tuple[str, str, object]] = {}
    for n, (column, written, typed) in enumerate(WRITTEN_NUMBERS):
        at = 7 + n * 61
        changes: dict[str, object] = {column: written}
        if column == "data_mb":
            changes |= {"event_type": "data", "duration_sec": None}
        if as_json_number and written.strip() == written and _is_json_number(written):
            changes[column] = _Bare(written)
        events[at] = {**events[at], **changes}
        expected[at] = (column, written, typed)
    return events, expected


class _Bare(str):
    """A value written into JSON Lines as a bare JSON number (its text as is, unquoted)."""


def _is_json_number(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return not text.startswith("+")


def _jsonl_line(record: dict[str, object]) -> str:
    return (
        "{"
        + ", ".join(f"{json.dumps(k)}: {v if isinstance(v, _Bare) else json.dumps(v)}" for k, v in record.items())
        + "}"
    )


@pytest.mark.parametrize("layout", ["csv", "jsonl strings", "jsonl numbers"])
def test_exponents_hex_and_signs_in_a_file_follow_the_contract(lake: LakeStore, layout: str) -> None:
    """Arrow's string-to-number cast reads ``1e5`` and ``1E-3``; the contract's plain numbers do not."""
    events, expected = written_number_events(as_json_number=layout == "jsonl numbers")
    activity = DATASETS["activity_logs"]
    if layout == "csv":
        names = activity.source_names
        rows = [",".join(names)] + [
            ",".join(f'"{e[n]}"' if e.get(n) is not None else "" for n in names) for e in events
        ]
        data, name, first_line = ("\n".join(rows) + "\n").encode(), "usage.csv", 2  # the header is line 1
    else:
        data, name, first_line = ("\n".join(_jsonl_line(e) for e in events) + "\n").encode(), "usage.jsonl", 1
    lake.put_bytes(f"raw/activity_logs/{DAY}/{name}", data)

    assert not run_gate(lake, activity, DAY).errors
    (entry,) = Ledger(lake).entries("activity_logs", DAY)
    assert entry.outcome == ARCHIVED, entry.reasons
    clean_partition(lake, activity, DAY)

    clean = {r["_source_line"]: r for r in read_clean(lake, activity, DAY).to_pylist()}
    quarantined = {q["_source_line"]: q for q in read_quarantine(lake, activity, DAY).to_pylist()}
    assert {line: (q["rule"], q["column"], q["value"]) for line, q in quarantined.items()} == {
        first_line + at: ("type", column, written) for at, (column, written, typed) in expected.items() if typed is None
    }
    for at, (column, written, typed) in expected.items():
        if typed is not None:
            assert clean[first_line + at][column] == typed, (column, written)
    assert len(clean) + len(quarantined) == len(events)
