"""The demo data generator keeps the raw landing contract, and breaks it only where it says so.

Files are collected into a dict (no lake needed) and read back with nothing but the standard
library's csv/json/gzip modules, the way an independent consumer of the contract would.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from customer360.lake.s3 import S3LakeStore
from customer360.lake.store import LakeStore
from customer360_generator import (
    ACTIVITY_FIELDS,
    BAD_ROWS,
    FILE_FORMATS,
    IBM_FIELDS,
    LATE_FILE,
    MALFORMED_FILE,
    NEW_LAYOUT,
    NEW_LAYOUT_EXTRA,
    NEW_LAYOUT_FIELDS,
    PLAN_FIELDS,
    ROW_FAULTS,
    GeneratedFile,
    GenerationReport,
    generate_demo_data,
    iter_activity_chunks,
    iter_activity_csv_chunks,
    write_activity_day,
    write_activity_file,
)

START = date(2024, 1, 1)
DAYS = 7
CUSTOMER_ID = re.compile(r"^[0-9]{4}-[A-Z]{5}$")
KEY = re.compile(r"^raw/(?P<dataset>[a-z_]+)/(?P<day>\d{4}-\d{2}-\d{2})/(?P<name>[^/]+)$")
OFFSET = re.compile(r"(Z|[+-]\d{2}:\d{2})$")
E164 = re.compile(r"^\+[1-9]\d{6,14}$")
MONEY = re.compile(r"^\d+\.\d{2}$")
DECIMAL_3 = re.compile(r"^\d+(\.\d{1,3})?$")
LOADABLE = {None, BAD_ROWS, LATE_FILE, NEW_LAYOUT}

# Small enough to keep the module fast, big enough for every fault to appear.
PARAMS = dict(days=DAYS, seed=7, customers=600, events_per_day=4_000, hours_per_day=24)


def _run(**overrides: object) -> tuple[dict[str, bytes], GenerationReport]:
    store: dict[str, bytes] = {}
    report = generate_demo_data(store.__setitem__, START, **{**PARAMS, **overrides})  # type: ignore[arg-type]
    return store, report


@pytest.fixture(scope="module")
def run() -> tuple[dict[str, bytes], GenerationReport]:
    return _run()


def _text(key: str, data: bytes) -> str:
    return (gzip.decompress(data) if key.endswith(".gz") else data).decode("utf-8")


def _records(key: str, data: bytes) -> tuple[list[str], list[dict[str, object]]]:
    """Header and rows of a CSV or JSON Lines file, parsed with the standard library only."""
    body = _text(key, data)
    if ".jsonl" in key:
        rows = [json.loads(line) for line in body.splitlines()]
        header = list(rows[0]) if rows else []
        assert all(list(r) == header for r in rows)
        return header, rows
    assert "\r" not in body, "LF line endings only"
    reader = csv.DictReader(io.StringIO(body, newline=""))
    rows = list(reader)
    assert all(None not in r and len(r) == len(reader.fieldnames or []) for r in rows), "ragged row"
    return list(reader.fieldnames or []), rows


def _expected_header(f: GeneratedFile) -> tuple[str, ...]:
    if f.dataset == "customers":
        return NEW_LAYOUT_FIELDS if f.fault == NEW_LAYOUT else IBM_FIELDS
    return {"plans": PLAN_FIELDS, "activity_logs": ACTIVITY_FIELDS}[f.dataset]


def _activity_violations(row: dict[str, object], day: date) -> list[str]:
    """The contract's rules for one activity row (CSV strings or JSON values)."""
    v = {k: "" if x is None else str(x).lower() if isinstance(x, bool) else str(x) for k, x in row.items()}
    problems = []
    if not v["event_id"]:
        problems.append("event_id")
    if not CUSTOMER_ID.match(v["customer_id"]):
        problems.append("customer_id")
    if OFFSET.search(v["event_ts"]):
        instant = datetime.fromisoformat(v["event_ts"]).astimezone(UTC)
        assert instant.date() == day, v["event_ts"]
    else:
        problems.append("event_ts")
    if v["event_type"] not in ("voice", "sms", "data"):
        problems.append("event_type")
    if Decimal(v["charge_amount"]) < 0:
        problems.append("charge_amount")
    # Rules no injected fault breaks: these must hold on every row.
    assert v["direction"] in ("in", "out")
    assert v["roaming"] in ("true", "false")
    # Rated to the ten-thousandth (activity_logs 1.1.0: 4 places).
    assert re.match(r"^-?\d+\.\d{4}$", v["charge_amount"]) or isinstance(row["charge_amount"], int | float)
    assert (v["duration_sec"] != "") == (v["event_type"] == "voice")
    assert v["duration_sec"] == "" or int(v["duration_sec"]) >= 0
    assert (v["data_mb"] != "") == (v["event_type"] == "data")
    assert v["data_mb"] == "" or DECIMAL_3.match(v["data_mb"])
    return problems


def test_same_seed_gives_identical_bytes_and_another_seed_differs() -> None:
    small = dict(customers=200, events_per_day=800, hours_per_day=6)
    first, report_a = _run(**small)
    second, report_b = _run(**small)
    assert first == second
    assert report_a == report_b
    other, _ = _run(seed=8, **small)
    assert other.keys() & first.keys()
    assert any(other[k] != first[k] for k in other.keys() & first.keys())


def test_report_lists_every_put_once_with_key_layout(run: tuple[dict[str, bytes], GenerationReport]) -> None:
    store, report = run
    assert [f.key for f in report.files] == list(store), "report order is put order"
    for f in report.files:
        m = KEY.match(f.key)
        assert m, f.key
        assert m["dataset"] == f.dataset and m["day"] == f.day.isoformat()
    faults = Counter(f.fault for f in report.files)
    assert faults[None] > len(report.files) // 2, faults
    assert report.customers >= 600
    assert report.events == PARAMS["events_per_day"] * DAYS
    names = {f.key.rsplit("/", 1)[1] for f in report.files if f.dataset == "activity_logs"}
    assert "usage-2024-01-03T05.csv" in names or "usage-2024-01-03T05.csv.gz" in names
    assert any(n.endswith(".jsonl") or n.endswith(".jsonl.gz") for n in names)
    assert any(n.endswith(".csv.gz") for n in names)


def test_loadable_files_parse_with_exactly_the_contract_header(
    run: tuple[dict[str, bytes], GenerationReport],
) -> None:
    store, report = run
    checked = Counter()
    for f in report.files:
        if f.fault not in LOADABLE:
            continue
        header, rows = _records(f.key, store[f.key])
        assert tuple(header) == _expected_header(f), f.key
        assert len(rows) == f.rows, f.key
        checked[f.dataset] += 1
    assert checked["customers"] == DAYS and checked["plans"] == 2
    assert checked["activity_logs"] > 0.9 * DAYS * 24


def test_healthy_activity_rows_keep_every_rule_and_bad_rows_stay_rare(
    run: tuple[dict[str, bytes], GenerationReport],
) -> None:
    store, report = run
    kinds = Counter()
    bad_total = 0
    for f in report.files:
        if f.dataset != "activity_logs" or f.fault not in LOADABLE:
            continue
        _, rows = _records(f.key, store[f.key])
        broken = [p for r in rows if (p := _activity_violations(r, f.day))]
        if f.fault == BAD_ROWS:
            assert 0 < len(broken) < 0.05 * len(rows), f.key
            assert f.detail == f"{len(broken)} rule-breaking rows"
            assert all(len(p) == 1 for p in broken), "each bad row breaks exactly one rule"
            kinds.update(p[0] for p in broken)
            bad_total += len(broken)
        else:
            assert broken == [], f.key
    assert set(kinds) == {"customer_id", "event_ts", "event_type", "charge_amount"}
    assert bad_total == report.bad_rows
    assert 0.0005 < bad_total / report.events < 0.005


def test_json_lines_use_natural_json_types(run: tuple[dict[str, bytes], GenerationReport]) -> None:
    store, report = run
    jsonl = [f for f in report.files if ".jsonl" in f.key]
    assert jsonl
    _, rows = _records(jsonl[0].key, store[jsonl[0].key])
    for r in rows:
        assert isinstance(r["roaming"], bool)
        assert isinstance(r["charge_amount"], int | float)
        assert r["duration_sec"] is None or isinstance(r["duration_sec"], int)
        assert r["data_mb"] is None or isinstance(r["data_mb"], int | float)
        assert isinstance(r["event_id"], str) and isinstance(r["event_ts"], str)


def test_customer_snapshot_looks_like_the_ibm_sample(run: tuple[dict[str, bytes], GenerationReport]) -> None:
    store, report = run
    snapshot = report.files[0]
    assert snapshot.dataset == "customers" and snapshot.day == START and snapshot.fault is None
    header, rows = _records(snapshot.key, store[snapshot.key])
    assert tuple(header) == IBM_FIELDS and len(header) == 21
    assert len(rows) == 600
    ids = [r["customerID"] for r in rows]
    assert all(CUSTOMER_ID.match(i) for i in ids) and len(set(ids)) == len(ids)
    allowed = {
        "gender": {"Male", "Female"},
        "SeniorCitizen": {"0", "1"},
        "InternetService": {"DSL", "Fiber optic", "No"},
        "Contract": {"Month-to-month", "One year", "Two year"},
        "PaymentMethod": {
            "Electronic check",
            "Mailed check",
            "Bank transfer (automatic)",
            "Credit card (automatic)",
        },
    }
    addons = IBM_FIELDS[9:15]
    for r in rows:
        for name, values in allowed.items():
            assert r[name] in values, (name, r[name])
        for name in ("Partner", "Dependents", "PhoneService", "PaperlessBilling", "Churn"):
            assert r[name] in ("Yes", "No")
        assert (r["MultipleLines"] == "No phone service") == (r["PhoneService"] == "No")
        assert r["MultipleLines"] in ("Yes", "No", "No phone service")
        for name in addons:
            assert (r[name] == "No internet service") == (r["InternetService"] == "No")
            assert r[name] in ("Yes", "No", "No internet service")
        assert 18.25 <= float(r["MonthlyCharges"]) <= 118.75
        assert (r["TotalCharges"] == " ") == (r["tenure"] == "0")
        assert 0 <= int(r["tenure"]) <= 72
    assert any(r["TotalCharges"] == " " for r in rows), "the IBM quirk must appear"
    month_to_month = sum(r["Contract"] == "Month-to-month" for r in rows) / len(rows)
    assert 0.45 < month_to_month < 0.65


def test_later_customer_files_are_small_deltas_some_in_the_newer_layout(
    run: tuple[dict[str, bytes], GenerationReport],
) -> None:
    store, report = run
    deltas = [f for f in report.files if f.dataset == "customers" and f.day > START]
    assert len(deltas) == DAYS - 1
    assert all(0 < f.rows < 0.05 * 600 for f in deltas)
    newer = [f for f in deltas if f.fault == NEW_LAYOUT]
    assert newer and len(newer) < len(deltas)
    catalog_ids = {r["plan_id"] for f in report.files if f.dataset == "plans"
                   for r in _records(f.key, store[f.key])[1]}  # fmt: skip
    for f in newer:
        header, rows = _records(f.key, store[f.key])
        assert tuple(header[-4:]) == NEW_LAYOUT_EXTRA and tuple(header[:21]) == IBM_FIELDS
        for r in rows:
            assert CUSTOMER_ID.match(r["customerID"])
            assert r["plan_id"] in catalog_ids
            assert E164.match(r["msisdn"]) and "@" in r["email"]
            assert OFFSET.search(r["updated_at"])
            datetime.fromisoformat(r["updated_at"])


def test_plan_catalog_and_change(run: tuple[dict[str, bytes], GenerationReport]) -> None:
    store, report = run
    plan_files = [f for f in report.files if f.dataset == "plans"]
    assert plan_files[0].day == START and plan_files[1].day > START
    _, catalog = _records(plan_files[0].key, store[plan_files[0].key])
    assert 6 <= len(catalog) <= 10
    assert len({p["plan_id"] for p in catalog}) == len(catalog)
    assert any("," in p["plan_name"] for p in catalog), "one name exercises RFC 4180 quoting"
    assert any(p["data_allowance_gb"] == "" for p in catalog), "unlimited plans are blank"
    for p in catalog:
        assert re.match(r"^PLN-\d{3}$", p["plan_id"]) and MONEY.match(p["monthly_fee"])
        assert p["contract"] in ("Month-to-month", "One year", "Two year")
        if p["effective_to"]:
            assert date.fromisoformat(p["effective_to"]) >= date.fromisoformat(p["effective_from"])
    _, changes = _records(plan_files[1].key, store[plan_files[1].key])
    assert changes and all(p["effective_from"] == plan_files[1].day.isoformat() for p in changes)


def test_malformed_files_are_really_unreadable(run: tuple[dict[str, bytes], GenerationReport]) -> None:
    store, report = run
    malformed = {f.detail: f for f in report.with_fault(MALFORMED_FILE)}
    assert set(malformed) == {"missing_column", "binary_garbage", "truncated_gzip", "unknown_dataset"}
    header, _ = _records(malformed["missing_column"].key, store[malformed["missing_column"].key])
    assert set(ACTIVITY_FIELDS) - set(header) == {"roaming"}
    with pytest.raises(UnicodeDecodeError):
        store[malformed["binary_garbage"].key].decode("utf-8")
    assert malformed["binary_garbage"].key.endswith(".csv") and malformed["binary_garbage"].rows == 0
    with pytest.raises((EOFError, gzip.BadGzipFile)):
        gzip.decompress(store[malformed["truncated_gzip"].key])
    assert malformed["unknown_dataset"].dataset not in ("customers", "plans", "activity_logs")


def test_late_file_carries_its_business_date_and_is_put_after_later_days(
    run: tuple[dict[str, bytes], GenerationReport],
) -> None:
    store, report = run
    (late,) = report.with_fault(LATE_FILE)
    assert late.dataset == "activity_logs" and late.day == START + timedelta(days=1)
    assert late.detail == f"delivered on {START + timedelta(days=4)}"
    position = report.files.index(late)
    assert max(f.day for f in report.files[:position]) == START + timedelta(days=4)
    header, rows = _records(late.key, store[late.key])
    assert tuple(header) == ACTIVITY_FIELDS and len(rows) == late.rows > 0


def test_events_are_redelivered_in_the_next_file_and_reference_generated_customers(
    run: tuple[dict[str, bytes], GenerationReport],
) -> None:
    store, report = run
    known_customers: set[str] = set()
    for f in report.files:
        if f.dataset == "customers":
            known_customers.update(r["customerID"] for r in _records(f.key, store[f.key])[1])
    seen: dict[str, tuple[str, dict[str, str]]] = {}
    total = duplicates = 0
    for f in report.files:
        if f.dataset != "activity_logs" or f.fault not in LOADABLE or ".jsonl" in f.key:
            continue
        for r in _records(f.key, store[f.key])[1]:
            total += 1
            if r["event_id"] in seen:
                first_key, first = seen[r["event_id"]]
                assert first == r and first_key != f.key, "a re-delivery is identical and in another file"
                duplicates += 1
            seen[r["event_id"]] = (f.key, r)
            if CUSTOMER_ID.match(r["customer_id"]):
                assert r["customer_id"] in known_customers
    assert 0.003 * total < duplicates < 0.02 * total


def test_write_activity_day_streams_requested_rows_in_bounded_chunks(tmp_path: Path) -> None:
    day = date(2024, 1, 3)
    customers = np.array([f"{i:04d}-ABCDE" for i in range(500)])
    chunks = list(iter_activity_csv_chunks(day, 50_000, seed=3, customer_ids=customers, chunk_rows=12_000))
    assert [n for _, n in chunks] == [10_000] * 5
    assert all(data.count(b"\n") == n for data, n in chunks)

    plain, packed = tmp_path / "day.csv", tmp_path / "day.csv.gz"
    options = dict(seed=3, customer_ids=customers, chunk_rows=12_000)
    assert write_activity_day(plain, day, 50_000, **options) == 50_000  # type: ignore[arg-type]
    assert write_activity_day(packed, day, 50_000, gzip=True, **options) == 50_000  # type: ignore[arg-type]
    body = plain.read_bytes()
    assert gzip.decompress(packed.read_bytes()) == body
    assert body == b"".join([",".join(ACTIVITY_FIELDS).encode() + b"\n", *(d for d, _ in chunks)])

    rows = list(csv.DictReader(io.StringIO(body.decode(), newline="")))
    assert len(rows) == 50_000
    ids = Counter(r["event_id"] for r in rows)
    duplicated = sum(c - 1 for c in ids.values())
    assert duplicated == 5 * round(10_000 * 0.01)
    bad = sum(bool(_activity_violations(r, day)) for r in rows)
    assert 0 < bad < 0.005 * len(rows)
    assert {r["customer_id"] for r in rows if CUSTOMER_ID.match(r["customer_id"])} <= set(customers)


def test_invalid_arguments_are_refused() -> None:
    with pytest.raises(ValueError):
        generate_demo_data(lambda key, data: None, START, days=0)
    with pytest.raises(ValueError):
        generate_demo_data(lambda key, data: None, START, hours_per_day=25)


# --- one activity day with a chosen fault mix (the benchmark's files) ---------------------------------


def _quarantine_counts(path: Path) -> tuple[int, Counter, list[int]]:
    """Rows read, quarantined rows per (rule, column), and their lines, by the project's contract evaluator."""
    from customer360.contracts import DATASETS
    from customer360.processing.formats import StringBatches, detect_format
    from customer360.processing.standardize import ContractEvaluator, evaluate_stream

    batches = StringBatches(path, detect_format(path.name))  # type: ignore[arg-type]
    evaluator = ContractEvaluator(DATASETS["activity_logs"], batches.read_header(), path.name, START)
    rows, counts, lines = 0, Counter(), []
    for result in evaluate_stream(evaluator, batches):
        rows += result.rows
        quarantine = result.quarantine
        assert set(quarantine.column("violations").to_pylist()) <= {1}, "each injected row breaks exactly one rule"
        counts.update(zip(quarantine.column("rule").to_pylist(), quarantine.column("column").to_pylist(), strict=True))
        lines += quarantine.column("_source_line").to_pylist()
    return rows, counts, lines


@pytest.mark.parametrize("file_format", FILE_FORMATS)
def test_a_fault_mix_injects_every_kind_in_equal_parts_and_reports_exactly_what_it_wrote(
    tmp_path: Path, file_format: str
) -> None:
    path = tmp_path / f"usage.{file_format}"
    report = write_activity_file(
        path, START, 20_000, seed=11, duplicate_share=0.02, bad_share=0.25, kinds=sorted(ROW_FAULTS), chunk_rows=3_000
    )

    header, records = _records(path.name, path.read_bytes())
    assert len(records) == report.rows == 20_000 and (not header or tuple(header) == ACTIVITY_FIELDS)
    assert report.bad_rows == 5_000 and set(report.injected) == set(ROW_FAULTS)
    assert max(report.injected.values()) - min(report.injected.values()) <= 1, "equal parts"
    ids = Counter(str(r["event_id"]) for r in records if r["event_id"])  # a missing id is a fault, not a resend
    assert sum(n - 1 for n in ids.values() if n > 1) == report.duplicates > 0
    rows, quarantined, lines = _quarantine_counts(path)
    assert rows == report.rows
    assert dict(quarantined) == report.by_rule_and_column(), "the contract finds exactly the injected rows"
    assert sum(report.by_rule().values()) == report.bad_rows
    # Spread uniformly: every tenth of the file holds about a tenth of the bad rows.
    first_data_line = 2 if file_format.startswith("csv") else 1
    tenths = Counter(min(9, (line - first_data_line) * 10 // rows) for line in lines)
    assert all(400 <= tenths[t] <= 600 for t in range(10)), tenths


def test_every_format_carries_the_same_events(tmp_path: Path) -> None:
    options = dict(seed=5, duplicate_share=0.01, bad_share=0.05, kinds=sorted(ROW_FAULTS), chunk_rows=2_000)
    reports, contents = [], []
    for file_format in FILE_FORMATS:
        path = tmp_path / f"usage.{file_format}"
        reports.append(write_activity_file(path, START, 5_000, **options))  # type: ignore[arg-type]
        _, records = _records(path.name, path.read_bytes())
        contents.append([{k: "" if v is None else str(v).lower() if isinstance(v, bool) else str(v)
                          for k, v in r.items()} for r in records])  # fmt: skip
    assert all(r == reports[0] for r in reports)
    csv_rows, jsonl_rows = contents[0], contents[2]
    assert [r["event_id"] for r in csv_rows] == [r["event_id"] for r in jsonl_rows]
    assert contents[0] == contents[1] and contents[2] == contents[3]


def test_unknown_fault_kinds_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown fault kinds"):
        list(iter_activity_chunks(START, 10, seed=1, kinds=["negative_charge", "cosmic_ray"]))


@pytest.fixture
def lake_env(lake: LakeStore, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> LakeStore:
    """CUSTOMER360_LAKE (and the S3 endpoint) pointing at the test lake, as a user's shell would."""
    monkeypatch.setenv("CUSTOMER360_LAKE", lake.uri)
    if isinstance(lake, S3LakeStore):
        monkeypatch.setenv("CUSTOMER360_S3_ENDPOINT_URL", request.getfixturevalue("moto_server"))
    return lake


def test_cli_fault_mix_reaches_the_gate_and_the_quarantine_exactly_as_reported(
    lake_env: LakeStore, capsys: pytest.CaptureFixture[str]
) -> None:
    """`customer360 generate --activity-day-rows`: what it says it injected is what the pipeline finds."""
    from customer360.cli import main
    from customer360.contracts import DATASETS
    from customer360.lake.ledger import Ledger
    from customer360.steps.clean import clean_partition, read_quarantine
    from customer360.steps.gate import run_gate

    activity, realistic, hostile = DATASETS["activity_logs"], date(2024, 3, 1), date(2024, 3, 2)
    common = ["generate", "--activity-day-rows", "4000", "--customers", "300", "--faults", "all"]
    capsys.readouterr()
    assert main([*common, "--start", str(realistic), "--bad-share", "0.04", "--format", "jsonl.gz"]) == 0
    mixed = json.loads(capsys.readouterr().out)
    assert main([*common, "--start", str(hostile), "--bad-share", "0.4", "--format", "csv"]) == 0
    rejected = json.loads(capsys.readouterr().out)
    assert mixed["key"] == f"raw/activity_logs/{realistic}/usage-{realistic}.jsonl.gz"

    for day in (realistic, hostile):
        assert not run_gate(lake_env, activity, day).errors
    (archived,) = Ledger(lake_env).entries("activity_logs", realistic)
    assert (archived.outcome, archived.details["rule_counts"]) == ("archived", mixed["by_rule"])
    result = clean_partition(lake_env, activity, realistic)
    assert result.rows_clean + result.rows_quarantined == 4000 == mixed["rows"]
    quarantine = read_quarantine(lake_env, activity, realistic)
    found = Counter(
        f"{r}:{c}" for r, c in zip(quarantine["rule"].to_pylist(), quarantine["column"].to_pylist(), strict=True)
    )
    assert dict(found) == mixed["by_rule_and_column"] and mixed["bad_rows"] == 160

    (refused,) = Ledger(lake_env).entries("activity_logs", hostile)
    assert (refused.outcome, refused.reasons) == ("rejected", ("too_many_bad_rows",))
    report = json.loads(lake_env.read_bytes(str(refused.report_key)))
    assert (report["rows"], report["bad_rows"], report["rule_counts"]) == (4000, 1600, rejected["by_rule"])
