"""Reading raw files as a person expects: JSON Lines fields from the whole file, physical line numbers,
bytes of another format named as such, and JSON values kept as the text the file spells.

Issue 12, items 13 (JSON Lines field set and messages), 14 (line numbers are physical lines) and 15
(gzip/binary bytes under a text name, short NUL samples); issue 11's JSON Lines reader (vectorized,
exact text). The files here are written by hand or by small writers of their own, not the project's
generator: key order varies per line, keys go missing, numbers come as JSON numbers and as strings.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import random
import tracemalloc
from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest

from customer360.contracts import DATASETS
from customer360.lake.ledger import ARCHIVED, REJECTED, Ledger, LedgerEntry
from customer360.lake.store import LakeStore
from customer360.processing.formats import (
    StringBatches,
    _jsonl_block_uniform,
    _jsonl_block_vectorized,
    detect_format,
)
from customer360.processing.inspect import ACTIONS, inspect_file
from customer360.steps.clean import clean_partition, read_clean, read_quarantine
from customer360.steps.gate import run_gate
from customer360_tests.corpus import PLANS_HEADER, event, plan_row

DAY = date(2024, 1, 1)
ACTIVITY = DATASETS["activity_logs"]
PLANS = DATASETS["plans"]


def gate_one(lake: LakeStore, dataset: str, name: str, data: bytes) -> tuple[LedgerEntry, dict[str, object] | None]:
    """Land one file, gate its day, return its ledger entry and (when rejected) its report."""
    lake.put_bytes(f"raw/{dataset}/{DAY}/{name}", data)
    assert not run_gate(lake, DATASETS[dataset], DAY).errors
    (entry,) = [e for e in Ledger(lake).entries(dataset, DAY) if e.source_name == name]
    report = json.loads(lake.read_bytes(entry.report_key)) if entry.report_key else None
    return entry, report


def jsonl(*records: dict[str, object] | str) -> bytes:
    """One line per record: a dict as JSON, a string as the raw line (blank lines, broken lines)."""
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records).encode()


def inspect_bytes(tmp_path: Path, dataset: str, name: str, data: bytes):  # noqa: ANN201 - Verdict
    path = tmp_path / name
    path.write_bytes(data)
    return inspect_file(DATASETS[dataset], path, name, DAY, len(data))


# -- item 13: JSON Lines field set from the whole file, blank lines, lines that are not objects ----------


def test_jsonl_first_object_omitting_nullable_fields_is_accepted(lake: LakeStore) -> None:
    # The first event is an sms: no duration, no data volume, no cell; later events carry those keys.
    first = {k: v for k, v in event(0, event_type="sms").items() if k not in ("duration_sec", "data_mb", "cell_id")}
    data = jsonl(first, *(event(i) for i in range(1, 20)))

    entry, report = gate_one(lake, "activity_logs", "events.jsonl", data)

    assert (entry.outcome, entry.reasons) == (ARCHIVED, ()), report
    clean_partition(lake, ACTIVITY, DAY)
    rows = read_clean(lake, ACTIVITY, DAY).sort_by("_source_line").to_pylist()
    assert len(rows) == 20
    assert (rows[0]["_source_line"], rows[0]["duration_sec"], rows[0]["cell_id"]) == (1, None, None)
    assert rows[1]["duration_sec"] == 60


def test_jsonl_required_key_missing_from_some_objects_is_a_row_violation(lake: LakeStore) -> None:
    records = [event(i) for i in range(60)]
    records[10] = event(10, customer_id="<drop>")
    records[40] = event(40, customer_id="<drop>", event_ts="<drop>")
    entry, report = gate_one(lake, "activity_logs", "events.jsonl", jsonl(*records))

    assert (entry.outcome, entry.reasons) == (ARCHIVED, ()), report
    clean_partition(lake, ACTIVITY, DAY)
    quarantined = read_quarantine(lake, ACTIVITY, DAY).sort_by("_source_line").to_pylist()
    assert [(q["_source_line"], q["rule"], q["column"]) for q in quarantined] == [
        (11, "required", "customer_id"),
        (41, "required", "customer_id"),
    ]
    assert len(read_clean(lake, ACTIVITY, DAY)) == 58


def test_jsonl_field_absent_from_every_object_is_a_missing_field_with_its_schema_diff(tmp_path: Path) -> None:
    # Absent from the first objects, present in none: the file's schema lacks it.
    data = jsonl(*(event(i, customer_id="<drop>") for i in range(30)), event(30, customer_id="<drop>", extra="x"))

    verdict = inspect_bytes(tmp_path, "activity_logs", "events.jsonl", data)

    assert verdict.reasons == ["missing_required_fields"]
    assert verdict.schema_diff["missing"] == ["customer_id"]
    assert verdict.schema_diff["unexpected"] == ["extra"]


def test_jsonl_field_only_in_a_later_object_is_present(tmp_path: Path) -> None:
    # cell_id appears in the last object only: the field exists; earlier rows simply have no value.
    records = [{k: v for k, v in event(i).items() if k != "cell_id"} for i in range(30)] + [event(30)]

    verdict = inspect_bytes(tmp_path, "activity_logs", "events.jsonl", jsonl(*records))

    assert verdict.accepted, verdict.failed
    assert verdict.schema_diff["missing"] == []


def test_jsonl_field_present_only_as_null_is_present(tmp_path: Path) -> None:
    # cell_id is null in every object: the field is there, with no value (as an empty CSV column).
    verdict = inspect_bytes(
        tmp_path, "activity_logs", "events.jsonl", jsonl(*(event(i, cell_id=None) for i in range(30)))
    )

    assert verdict.accepted, verdict.failed
    assert "cell_id" in verdict.header


def test_jsonl_key_name_inside_a_string_is_not_the_key(tmp_path: Path) -> None:
    # No object holds customer_id; a string value spelling it (even followed by a colon) is no key.
    records = [event(i, customer_id="<drop>", cell_id='"customer_id": 7590-VHVEG') for i in range(30)]

    verdict = inspect_bytes(tmp_path, "activity_logs", "events.jsonl", jsonl(*records))

    assert verdict.reasons == ["missing_required_fields"]
    assert verdict.schema_diff["missing"] == ["customer_id"]


@pytest.mark.parametrize("blank", ["\n\n", "\n   \n\t\n", "\r\n\r\n"])
def test_jsonl_leading_blank_lines_are_not_a_missing_header(lake: LakeStore, blank: str) -> None:
    data = blank.encode() + jsonl(*(event(i) for i in range(10)))

    entry, report = gate_one(lake, "activity_logs", "events.jsonl", data)

    assert (entry.outcome, entry.reasons) == (ARCHIVED, ()), report
    clean_partition(lake, ACTIVITY, DAY)
    lines = sorted(read_clean(lake, ACTIVITY, DAY)["_source_line"].to_pylist())
    skipped = blank.count("\n")
    assert lines == list(range(1 + skipped, 11 + skipped))


def test_jsonl_empty_first_object_is_a_row_not_a_missing_header(tmp_path: Path) -> None:
    verdict = inspect_bytes(tmp_path, "activity_logs", "events.jsonl", jsonl({}, *(event(i) for i in range(40))))

    assert verdict.accepted, verdict.failed
    assert (verdict.rows, verdict.bad_rows, verdict.rule_counts) == (41, 1, {"required": 1})


@pytest.mark.parametrize(
    ("line", "kind"),
    [("[1, 2]", "array"), ('"just text"', "string"), ("42", "number"), ("null", "null"), ("true", "boolean")],
)
@pytest.mark.parametrize("position", [0, 3, 6])
def test_jsonl_line_that_is_not_an_object_is_named_with_its_line(
    tmp_path: Path, line: str, kind: str, position: int
) -> None:
    # Objects whose keys differ from line to line, blank lines, then the line that is no object.
    records: list[dict[str, object] | str] = [event(0), "", event(1, cell_id="<drop>"), "", event(2), event(3)]
    records.insert(position, line)
    data = jsonl(*records)

    verdict = inspect_bytes(tmp_path, "activity_logs", "events.jsonl", data)

    (failed,) = verdict.failed
    assert failed.check == "not_json_object"
    assert failed.message == f"line {position + 1} is not a JSON object: it is a JSON {kind}"
    assert failed.samples == [{"line": position + 1, "text": line}]
    assert verdict.schema_diff == {}, "never reported as missing fields"


def test_jsonl_malformed_line_deep_in_a_big_file_is_named(tmp_path: Path) -> None:
    records: list[dict[str, object] | str] = [event(i) for i in range(40_000)]
    records[25_006] = '{"event_id": "e-9", "customer_id": 7590-VHVEG}'
    records[31_000] = '{"event_id": "e-1", "event_id": "e-2"}'

    verdict = inspect_bytes(tmp_path, "activity_logs", "events.jsonl", jsonl(*records))

    (failed,) = verdict.failed
    assert (failed.check, failed.samples[0]["line"]) == ("invalid_json", 25_007)
    assert failed.message.startswith("line 25007 is not JSON")


def test_jsonl_repeated_key_is_named(tmp_path: Path) -> None:
    data = jsonl(*(event(i) for i in range(5)), '{"event_id": "e-1", "event_id": "e-2"}')

    verdict = inspect_bytes(tmp_path, "activity_logs", "events.jsonl", data)

    assert [(f.check, f.message) for f in verdict.failed] == [("duplicate_key", "line 6 repeats the key 'event_id'")]
    assert ACTIONS["duplicate_key"]


# -- item 14: line numbers are physical lines ----------------------------------------------------------


def physical_record_lines(data: bytes) -> list[int]:
    """Where each data record starts, as Python's csv module counts lines (an independent count)."""
    reader = csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""))
    starts, line, header = [], 1, False
    for record in reader:
        if record and header:
            starts.append(line)
        header = header or bool(record)
        line = reader.line_num + 1
    return starts


def plans_csv_with_multiline_values(eol: str) -> bytes:
    rows = [PLANS_HEADER, "", plan_row(0)]
    rows += [plan_row(1, name='"Family\nplus"'), "", "", plan_row(2)]
    rows += [plan_row(3, name='"Two\r\n\r\nparagraphs"'), plan_row(4, effective_from="2023-02-30")]
    rows += ["", plan_row(5, name='"cr\ronly"'), plan_row(6), "", "", "", plan_row(7, effective_from="not a date")]
    rows += [plan_row(i) for i in range(8, 60)]
    return (eol.join(rows) + eol).encode()


@pytest.mark.parametrize("eol", ["\n", "\r\n"])
def test_csv_rows_keep_physical_lines_after_quoted_newlines_and_blank_lines(lake: LakeStore, eol: str) -> None:
    data = plans_csv_with_multiline_values(eol)
    expected = physical_record_lines(data)

    entry, report = gate_one(lake, "plans", "catalog.csv", data)

    assert (entry.outcome, entry.reasons) == (ARCHIVED, ()), report
    clean_partition(lake, PLANS, DAY)
    clean = read_clean(lake, PLANS, DAY).to_pylist()
    quarantined = read_quarantine(lake, PLANS, DAY).to_pylist()
    lines = {r["plan_id"]: r["_source_line"] for r in clean}
    lines |= {json.loads(q["record"])["plan_id"]: q["_source_line"] for q in quarantined}
    assert [lines[f"P-{i:03d}"] for i in range(60)] == expected
    assert lines["P-003"] == 9 and lines["P-007"] == 20
    assert sorted(q["_source_line"] for q in quarantined) == [lines["P-004"], lines["P-007"]]


def test_gate_report_samples_name_physical_lines(lake: LakeStore) -> None:
    rows = [PLANS_HEADER, plan_row(0, name='"Multi\nline"'), ""]
    rows += [plan_row(i, effective_from="2023-02-30") for i in range(1, 4)] + ["", "", plan_row(4)]
    data = ("\n".join(rows) + "\n").encode()

    entry, report = gate_one(lake, "plans", "catalog.csv", data)

    assert entry.outcome == REJECTED and report is not None
    (failed,) = report["failed_checks"]
    assert failed["check"] == "too_many_bad_rows"
    assert [s["line"] for s in failed["samples"]] == [5, 6, 7]


def test_ragged_row_report_names_physical_lines_and_not_blank_lines(lake: LakeStore) -> None:
    rows = [PLANS_HEADER, "", plan_row(0, name='"Multi\nline"'), "", "", "P-009,Short"] + [plan_row(i) for i in (1, 2)]
    data = ("\n".join(rows) + "\n").encode()

    entry, report = gate_one(lake, "plans", "catalog.csv", data)

    assert entry.reasons == ("wrong_field_count",) and report is not None
    (failed,) = report["failed_checks"]
    assert failed["count"] == 1
    assert failed["samples"] == [{"line": 7, "expected_fields": 9, "actual_fields": 2, "text": "P-009,Short"}]


def test_jsonl_rows_keep_physical_lines_after_blank_lines(lake: LakeStore) -> None:
    records: list[dict[str, object] | str] = ["", event(0), "", "", event(1, event_type="fax"), "  ", event(2)]
    records += [event(i) for i in range(3, 40)]
    data = jsonl(*records).replace(b"\n", b"\r\n")

    entry, report = gate_one(lake, "activity_logs", "events.jsonl", data)

    assert (entry.outcome, entry.reasons) == (ARCHIVED, ()), report
    clean_partition(lake, ACTIVITY, DAY)
    (quarantined,) = read_quarantine(lake, ACTIVITY, DAY).to_pylist()
    assert (quarantined["_source_line"], quarantined["rule"]) == (5, "allowed_values")
    clean_lines = sorted(read_clean(lake, ACTIVITY, DAY)["_source_line"].to_pylist())
    assert clean_lines[:3] == [2, 7, 8]


def random_csv(rng: random.Random) -> bytes:
    eol = rng.choice(["\n", "\r\n", "\r"])
    lines = [""] * rng.randint(0, 2) + ["a,b,c"]
    for i in range(rng.randint(1, 40)):
        lines += [""] * rng.choice([0, 0, 0, 1, 3])
        value = rng.choice(["x", '"multi\nline"', '"crlf\r\nin"', '"blank\n\nline"', '"q""uote"', "", '"cr\ronly"'])
        lines.append(f"{i},{value},z")
    return (eol.join(lines) + rng.choice([eol, ""])).encode()


@pytest.mark.parametrize("block_bytes", [64, 1 << 20])
def test_csv_row_lines_agree_with_pythons_csv_module(tmp_path: Path, block_bytes: int) -> None:
    rng = random.Random(14)
    path = tmp_path / "f.csv"
    for _ in range(150):
        data = random_csv(rng)
        path.write_bytes(data)
        batches = StringBatches(path, detect_format(path.name), csv_block_bytes=block_bytes)
        batches.read_header()
        lines = [line for _, batch_lines in batches for line in batch_lines.to_pylist()]
        assert lines == physical_record_lines(data), data


def test_millions_of_blank_lines_keep_memory_small(tmp_path: Path) -> None:
    blank_lines = 6_000_000
    path = tmp_path / "blanks.csv"
    path.write_bytes(b"a,b\n1,2\n" + b"\n" * blank_lines + b"3,4\n\n\n5,6\n")
    batches = StringBatches(path, detect_format(path.name))
    batches.read_header()

    tracemalloc.start()
    try:
        lines = [line for _, batch_lines in batches for line in batch_lines.to_pylist()]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert lines == [2, 3 + blank_lines, 6 + blank_lines]
    # One int64 per blank line would already be 48 MB; runs keep it to the scan's working set.
    assert peak < 32 << 20, f"{peak} bytes traced: blank lines must be kept as runs, not one entry each"


# -- item 15: bytes of another format under a text name; short NUL samples --------------------------------


@pytest.mark.parametrize(("name", "extension"), [("crm.csv", ".csv"), ("events.jsonl", ".jsonl")])
def test_gzip_bytes_under_a_plain_name_are_named_gzip(lake: LakeStore, name: str, extension: str) -> None:
    dataset = "customers" if extension == ".csv" else "activity_logs"
    data = gzip.compress(b"customerID,gender\n" if extension == ".csv" else jsonl(event(1)), mtime=0)

    entry, report = gate_one(lake, dataset, name, data)

    assert entry.reasons == ("undeclared_gzip",) and report is not None
    (failed,) = report["failed_checks"]
    assert "this is gzip" in failed["message"] and f"name it {extension}.gz" in failed["message"]
    assert failed["action"] == ACTIONS["undeclared_gzip"]
    assert failed["samples"] == [{"offset": 0, "bytes": "1f8b", "expected_extension": f"{extension}.gz"}]


@pytest.mark.parametrize(
    ("name", "data", "kind"),
    [
        ("crm.csv", b"PK\x03\x04\x14\x00\x06\x00" + b"\x00" * 64, "ZIP archive"),
        ("events.jsonl", b"PAR1\x15\x04" + b"\x00" * 64, "Parquet"),
        ("crm.csv.gz", gzip.compress(b"PK\x03\x04\x14\x00" + b"\x00" * 64, mtime=0), "ZIP archive"),
        ("crm.csv", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "PDF"),
    ],
    ids=["zip-named-csv", "parquet-named-jsonl", "zip-inside-csv-gz", "pdf-named-csv"],
)
def test_binary_formats_under_a_text_name_are_named(tmp_path: Path, name: str, data: bytes, kind: str) -> None:
    dataset = "activity_logs" if ".jsonl" in name else "customers"

    verdict = inspect_bytes(tmp_path, dataset, name, data)

    (failed,) = verdict.failed
    assert failed.check == "binary_file"
    assert kind in failed.message


def test_plain_text_named_gz_says_how_to_name_it(tmp_path: Path) -> None:
    verdict = inspect_bytes(tmp_path, "customers", "crm.csv.gz", b"customerID,gender\n0001-ABCDE,Male\n")

    (failed,) = verdict.failed
    assert failed.check == "corrupt_compression"
    assert "not gzip-compressed" in failed.message and "name it .csv" in failed.message


@pytest.mark.parametrize("extension", [".csv", ".jsonl"])
def test_nul_sample_shows_offset_line_column_and_a_short_escaped_excerpt(tmp_path: Path, extension: str) -> None:
    header = "plan_id,plan_name\n" if extension == ".csv" else ""
    good = "P-1,Basic\n" if extension == ".csv" else '{"plan_id": "P-1"}\n'
    bad = "P-2,Ba" + "\0" * 200 + "sic\n" if extension == ".csv" else '{"plan_id": "P-2' + "\0" * 200 + '"}\n'
    data = (header + good + bad + good).encode()

    verdict = inspect_bytes(tmp_path, "plans", "catalog" + extension, data)

    (failed,) = verdict.failed
    assert (failed.check, failed.count) == ("nul_bytes", 1)
    (sample,) = failed.samples
    line = 3 if extension == ".csv" else 2
    column = bad.index("\0") + 1
    assert sample["line"] == line and sample["column"] == column
    assert sample["offset"] == data.index(b"\0")
    assert sample["nul_bytes_in_line"] == 200
    assert len(str(sample["text"])) < 120, "a short excerpt, never the 200 NULs"
    assert str(sample["text"]).startswith(bad[: column - 1]) and "\\x00\\x00" in str(sample["text"])


# -- issue 11: JSON Lines values as the text a CSV would carry; vectorized and exact agree ----------------


def test_jsonl_values_are_the_text_the_file_spells(lake: LakeStore) -> None:
    good = [event(i) for i in range(80)]
    records: list[dict[str, object] | str] = [*good]
    # Numbers as JSON numbers and as strings, booleans both ways, keys in any order, unicode, nesting.
    records[0] = '{"roaming": true, "charge_amount": 12.50, "event_id": "e-a", "customer_id": "7590-VHVEG",'
    records[0] += ' "event_ts": "2024-01-01T10:00:00Z", "event_type": "voice", "direction": "out", "duration_sec": 60}'
    records[1] = event(1, roaming="false", charge_amount="0.5", duration_sec="61", cell_id="Zürich-東京")
    records[2] = event(2, meta={"source": [1, 2.50]}, cell_id=None)
    records[3] = event(3, duration_sec=60.0)  # an int field written as a float: breaks the type rule
    records[4] = '{"event_id": "e-b", "customer_id": "7590-VHVEG", "event_ts": "2024-01-01T10:00:00Z",'
    records[4] += ' "event_type": "voice", "direction": "out", "duration_sec": 99999999999999999999,'
    records[4] += ' "roaming": false, "charge_amount": 0.5}'  # an integer beyond 64 bits
    entry, report = gate_one(lake, "activity_logs", "events.jsonl", jsonl(*records))

    assert (entry.outcome, entry.reasons) == (ARCHIVED, ()), report
    clean_partition(lake, ACTIVITY, DAY)
    clean = {r["_source_line"]: r for r in read_clean(lake, ACTIVITY, DAY).to_pylist()}
    assert str(clean[1]["charge_amount"]).rstrip("0") == "12.5" and clean[1]["roaming"] is True
    assert clean[1]["duration_sec"] == 60
    assert (clean[2]["roaming"], clean[2]["duration_sec"], clean[2]["cell_id"]) == (False, 61, "Zürich-東京")
    assert json.loads(clean[3]["_rescued_data"]) == {"meta": '{"source":[1,2.5]}'}
    quarantined = {q["_source_line"]: q for q in read_quarantine(lake, ACTIVITY, DAY).to_pylist()}
    assert {line: (q["rule"], q["column"], q["value"]) for line, q in quarantined.items()} == {
        4: ("type", "duration_sec", "60.0"),
        5: ("type", "duration_sec", "99999999999999999999"),
    }


@pytest.mark.parametrize(
    "written", ["12.50", "1e5", "1E-3", "-0", "60.0", "99999999999999999999", "0.10000000000000000001"]
)
def test_jsonl_numbers_reach_the_contract_as_written(tmp_path: Path, written: str) -> None:
    path = tmp_path / "e.jsonl"
    path.write_bytes(b"".join(b'{"n": %s, "t": true, "f": false, "z": null}\n' % written.encode() for _ in range(3)))

    ((batch, lines),) = list(StringBatches(path, detect_format(path.name)))

    assert batch.to_pylist() == [{"n": written, "t": "true", "f": "false", "z": None}] * 3
    assert lines.to_pylist() == [1, 2, 3]


def test_jsonl_gz_reads_like_jsonl(tmp_path: Path) -> None:
    data = b"\n" + jsonl(*(event(i) for i in range(50_000)))
    plain, packed = tmp_path / "e.jsonl", tmp_path / "e.jsonl.gz"
    plain.write_bytes(data)
    packed.write_bytes(gzip.compress(data, compresslevel=1))

    def read(path: Path) -> tuple[list[int], pa.Table]:
        batches = list(StringBatches(path, detect_format(path.name)))
        return [n for _, lines in batches for n in lines.to_pylist()], pa.Table.from_batches([b for b, _ in batches])

    assert read(plain) == read(packed)
    assert read(plain)[0] == list(range(2, 50_002))


BARE = ["12.50", "-0", "1e5", "1E-3", "99999999999999999999", "0", "3.14159", "-12", "0.1000000000000000000001"]
TEXTS = ["x", 'q"uote', "back\\slash", "new\nline", "é", "東京", "😀", "", " pad ", "tab\t", "a:b,c}{[", "\\u0041"]


def random_jsonl(rng: random.Random, nested: bool) -> bytes:
    """JSON Lines of an independent writer: any key order, keys missing, spaces around tokens, escapes."""

    def value() -> str:
        draw = rng.random()
        if draw < 0.3:
            return rng.choice(BARE)
        if draw < 0.6:
            return json.dumps(rng.choice(TEXTS), ensure_ascii=rng.random() < 0.5)
        if draw < 0.7:
            return rng.choice(["true", "false", "null"])
        if draw < 0.75 and nested:
            return rng.choice(['{"k": [1, 2.50]}', '[1, "x"]', "[]", "{}"])
        return json.dumps(f"v{rng.randint(0, 99)}")

    eol = rng.choice(["\n", "\r\n"])
    lines = []
    for _ in range(rng.randint(1, 60)):
        lines += [rng.choice(["", "", "  ", "\t"]) for _ in range(rng.choice([0, 0, 0, 1, 2]))]
        keys = rng.sample(["a", "b", "c", "d", "é", "k\\"], rng.randint(0, 5))
        pairs = [
            json.dumps(k, ensure_ascii=rng.random() < 0.5)
            + rng.choice(["", " ", "\t"])
            + ":"
            + rng.choice(["", " "])
            + value()
            for k in keys
        ]
        lines.append("{" + rng.choice([",", ", "]).join(pairs) + "}")
    return (eol.join(lines) + rng.choice([eol, ""])).encode()


def rows_by_pythons_json(data: bytes) -> list[tuple[int, dict[str, str]]]:
    """Each object's values as text: numbers as written, true/false, nested values as compact JSON."""
    rows = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        text = raw.strip(b" \t\r")
        if not text:
            continue
        exact, plain = json.loads(text, parse_float=str, parse_int=str), json.loads(text)
        row = {}
        for key, value in exact.items():
            if isinstance(value, dict | list):
                row[key] = json.dumps(plain[key], separators=(",", ":"), ensure_ascii=False)
            elif value is not None:
                row[key] = {True: "true", False: "false"}.get(value, value) if isinstance(value, bool) else value
        rows.append((number, row))
    return rows


def rows_read(path: Path) -> list[tuple[int, dict[str, str]]]:
    """Each object the reader yields, with its physical line, without its empty values."""
    return [
        (line, {k: v for k, v in row.items() if v is not None})
        for batch, lines in StringBatches(path, detect_format(path.name))
        for line, row in zip(lines.to_pylist(), batch.to_pylist(), strict=True)
    ]


def test_vectorized_jsonl_reading_agrees_with_pythons_json_module(tmp_path: Path) -> None:
    rng = random.Random(11)
    path = tmp_path / "f.jsonl"
    vectorized = 0
    for round_ in range(200):
        data = random_jsonl(rng, nested=round_ % 5 == 0)
        path.write_bytes(data)
        assert rows_read(path) == rows_by_pythons_json(data), data
        block = data if data.endswith(b"\n") else data + b"\n"
        vectorized += _jsonl_block_vectorized(block, 1, []) is not None
    assert vectorized >= 150, "flat files take the vectorized path; only nested values go line by line"


def uniform_jsonl(rng: random.Random) -> bytes:
    """JSON Lines as one record type is usually written: the same keys in the same order on every line."""
    keys = rng.sample(["event_id", "a", "b", "é", "long_key_name_over_eight", "k"], rng.randint(1, 6))
    colon, comma = rng.choice([(":", ","), (": ", ", ")])
    eol = rng.choice(["\n", "\r\n"])
    escapes = rng.random() < 0.3  # a file with escaped strings takes the other path

    def value() -> str:
        draw = rng.random()
        if draw < 0.3:
            return rng.choice(BARE + ["true", "false", "null"])
        if draw < 0.35 and escapes:
            return json.dumps(rng.choice(TEXTS), ensure_ascii=rng.random() < 0.5)
        texts = ["x", "é", "東京", "😀", "", " pad ", "a:b,c}{[", "2024-03-01T10:00:00Z"]
        return json.dumps(rng.choice(texts), ensure_ascii=False)

    lines = []
    for _ in range(rng.randint(1, 80)):
        if rng.random() < 0.05:
            lines.append("")
        lines.append("{" + comma.join(json.dumps(k, ensure_ascii=False) + colon + value() for k in keys) + "}")
    return (eol.join(lines) + eol).encode()


def test_uniform_jsonl_blocks_are_cut_by_byte_position_and_agree_with_pythons_json_module(tmp_path: Path) -> None:
    rng = random.Random(5)
    path = tmp_path / "f.jsonl"
    uniform = 0
    for _ in range(300):
        data = uniform_jsonl(rng)
        path.write_bytes(data)
        assert rows_read(path) == rows_by_pythons_json(data), data
        uniform += _jsonl_block_uniform(data, 1) is not None
    assert uniform >= 100, "files without escapes are cut by position"


def test_a_uniform_block_with_any_byte_changed_is_read_as_pythons_json_reads_it_or_left_to_the_other_paths() -> None:
    """Mutation: the byte-position reader never accepts a block Python's json refuses, nor reads one differently."""
    rng = random.Random(8)
    accepted = 0
    for _ in range(3000):
        data = bytearray(uniform_jsonl(rng))
        for _ in range(rng.randint(1, 3)):
            data[rng.randrange(len(data))] = rng.choice(b'{}[]":, \t\r\n\\0123456789aelnrstuxE.-+\x01')
        block = bytes(data) if data.endswith(b"\n") else bytes(data) + b"\n"
        try:
            block.decode()
        except UnicodeDecodeError:
            continue  # the reader stops at bytes that are not UTF-8 before any block is parsed
        parsed = _jsonl_block_uniform(block, 1)
        if parsed is None:
            continue
        try:
            expected = rows_by_pythons_json(block)
        except ValueError:
            raise AssertionError(f"accepted a block Python's json refuses: {block!r}") from None
        table, lines = parsed
        got = [
            (int(line), {k: v for k, v in row.items() if v is not None})
            for line, row in zip(lines.tolist(), table.to_pylist(), strict=True)
        ]
        assert got == expected, block
        accepted += 1
    assert accepted >= 150, "mutations that keep the JSON valid are read by position"
