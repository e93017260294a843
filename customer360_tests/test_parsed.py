"""Clean writes the gate's typed rows of a file instead of parsing and typing the archive again: same result.

The files here vary what the readers must carry over exactly: JSON Lines blocks with different key
sets (a key only in some blocks, a block with an optional key absent everywhere, unknown keys kept in
``_rescued_data``), blank lines and CRLF (physical line numbers), bad rows of several rules, and a CSV
with duplicate keys within the file. Each is cleaned twice: from the gate's kept parse, then (a
replay, the parse consumed) from the archive; both results must be identical, row for row.
"""

from __future__ import annotations

import json
import os
import random
import time
from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest

from customer360.contracts import DATASETS
from customer360.lake.ledger import ARCHIVED, REJECTED, Ledger
from customer360.lake.store import LakeStore
from customer360.processing import formats, parsed
from customer360.processing.formats import detect_format
from customer360.processing.standardize import ContractEvaluator, evaluate_stream
from customer360.steps.clean import clean_partition, read_clean, read_quarantine
from customer360.steps.gate import run_gate
from customer360_tests.corpus import CUSTOMERS_HEADER, customer_row, event

DAY = date(2024, 1, 1)
ACTIVITY = DATASETS["activity_logs"]


def activity_jsonl(rows: int, seed: int = 3) -> bytes:
    rng = random.Random(seed)
    lines = []
    for i in range(rows):
        record = event(i, roaming=rng.choice([True, "false"]), charge_amount=rng.choice([0.5, "0.0125", 12]))
        if i // 40 % 3 == 1:
            record["meta"] = {"probe": i}  # an unknown key in some blocks only
        if i // 40 % 3 == 2:
            record.pop("cell_id")  # an optional key absent from whole blocks
        if i % 97 == 5:
            record["event_ts"] = "2024-02-30T10:00:00Z"
        if i % 89 == 7:
            record["charge_amount"] = "1e5"
        if i % 83 == 3:
            record["event_type"] = "mms"
        items = list(record.items())
        rng.shuffle(items)
        lines.append(json.dumps(dict(items), ensure_ascii=rng.random() < 0.5) + ("\r\n" if i % 3 else "\n"))
        if i % 50 == 49:
            lines.append("\n  \n")
    return "".join(lines).encode()


def activity_csv(rows: int) -> bytes:
    names = ACTIVITY.source_names
    out = [",".join(names)]
    for i in range(rows):
        record = event(i, roaming="false", duration_sec="-3" if i % 71 == 4 else "60")
        out.append(",".join("" if record.get(n) is None else str(record[n]) for n in names))
    return ("\n".join(out) + "\n").encode()


def customers_csv(rows: int) -> bytes:
    lines = [CUSTOMERS_HEADER, *(customer_row(i) for i in range(rows)), customer_row(3), customer_row(7)]
    return ("\n".join(lines) + "\n").encode()


def cleaned(lake: LakeStore, dataset: str) -> tuple[list[dict[str, object]], list[dict[str, object]], object]:
    result = clean_partition(lake, DATASETS[dataset], DAY)
    clean = read_clean(lake, DATASETS[dataset], DAY).sort_by("_source_line").to_pylist()
    quarantine = read_quarantine(lake, DATASETS[dataset], DAY).sort_by("_source_line").to_pylist()
    return (
        clean,
        quarantine,
        [
            (
                f.stats.clean_rows,
                f.stats.quarantined_rows,
                f.stats.rule_counts,
                f.stats.rescued_columns,
                f.stats.samples,
            )
            for f in result.files
        ],
    )


@pytest.mark.parametrize(
    ("dataset", "name", "data"),
    [
        ("activity_logs", "usage.jsonl", activity_jsonl(1200)),
        ("activity_logs", "usage.csv", activity_csv(900)),
        ("customers", "crm.csv", customers_csv(300)),
    ],
    ids=["jsonl", "activity-csv", "customers-csv"],
)
def test_clean_of_the_gates_parse_equals_clean_of_the_archive(
    lake: LakeStore, parsed_dir: Path, monkeypatch: pytest.MonkeyPatch, dataset: str, name: str, data: bytes
) -> None:
    monkeypatch.setattr(formats, "JSONL_BLOCK_BYTES", 4096)  # many blocks, each with its own key set
    lake.put_bytes(f"raw/{dataset}/{DAY}/{name}", data)
    assert not run_gate(lake, DATASETS[dataset], DAY).errors
    (entry,) = Ledger(lake).entries(dataset, DAY)
    assert entry.outcome == ARCHIVED, entry.reasons
    (kept,) = list(parsed_dir.iterdir())
    assert kept.name == parsed.address(entry.sha256, detect_format(name))  # type: ignore[arg-type]
    assert len(list(kept.glob("*.clean.arrow"))) > (1 if name.endswith(".jsonl") else 0)
    assert list(kept.glob("*.quarantine.arrow")), "the bad rows are kept with the clean ones"

    from_parse = cleaned(lake, dataset)
    assert not list(parsed_dir.iterdir()), "clean consumed the kept parse"
    from_archive = cleaned(lake, dataset)  # a replay: nothing kept any more, the archive is parsed

    assert from_parse == from_archive
    clean, quarantine, files = from_parse
    assert len(clean) + len(quarantine) == entry.rows
    assert quarantine, "the files hold bad rows"
    if name.endswith(".jsonl"):
        assert files[0][3] == ("meta",) and any(row["_rescued_data"] for row in clean)
        assert max(row["_source_line"] for row in clean + quarantine) > entry.rows  # blank lines counted


def test_a_rejected_file_keeps_no_parse(lake: LakeStore, parsed_dir: Path) -> None:
    bad = activity_jsonl(200).replace(b'"voice"', b'"fax"')
    lake.put_bytes(f"raw/activity_logs/{DAY}/usage.jsonl", bad)
    assert not run_gate(lake, ACTIVITY, DAY).errors
    (entry,) = Ledger(lake).entries("activity_logs", DAY)
    assert entry.outcome == REJECTED
    assert not list(parsed_dir.iterdir())


def test_a_kept_parse_that_does_not_match_the_ledger_is_not_used(lake: LakeStore, parsed_dir: Path) -> None:
    """A parse that is not the archived file's (fewer rows, another parser version) is dropped; clean parses."""
    data = activity_jsonl(300)
    lake.put_bytes(f"raw/activity_logs/{DAY}/usage.jsonl", data)
    assert not run_gate(lake, ACTIVITY, DAY).errors
    (entry,) = Ledger(lake).entries("activity_logs", DAY)
    (kept,) = list(parsed_dir.iterdir())
    meta = json.loads((kept / "meta.json").read_text())
    (kept / "meta.json").write_text(json.dumps({**meta, "rows": meta["rows"] - 1}))
    for batch in kept.glob("*.arrow"):  # what a wrong parse would hold: no rows at all
        table = pa.ipc.open_file(pa.memory_map(str(batch))).read_all()
        with pa.OSFile(str(batch), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table.slice(0, 0))

    clean, quarantine, _ = cleaned(lake, "activity_logs")

    assert len(clean) + len(quarantine) == entry.rows == 300
    assert not list(parsed_dir.iterdir())


def kept_evaluation(path: Path, sha256: str) -> int:
    """Evaluate ``path`` as the gate does and publish what it keeps; the rows kept."""
    file_format = detect_format(path.name)
    assert file_format is not None
    batches = formats.StringBatches(path, file_format)
    evaluator = ContractEvaluator(ACTIVITY, [], path.name, DAY)
    tee = parsed.ParseTee(
        sha256, file_format, contract_version=ACTIVITY.version, partition_date=str(DAY), max_bad_share=0.05
    )
    with tee as keep:
        for result in evaluate_stream(evaluator, batches, collect=lambda: keep.active):
            keep.keep(result)
        keep.publish()
    return keep.rows


def test_one_consumer_claims_a_parse_and_leftovers_of_a_crash_expire(parsed_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "usage.jsonl"
    path.write_bytes(activity_jsonl(100))
    file_format = detect_format(path.name)
    assert file_format is not None
    rows = kept_evaluation(path, "ab" * 32)
    # A gate killed mid-parse leaves an unfinished folder, a clean killed mid-read a claimed one.
    crashed = [parsed_dir / ".writing-x", parsed_dir / ".claimed-y"]
    for folder in crashed:
        folder.mkdir()
        old = time.time() - parsed.MAX_AGE_SECONDS - 60
        os.utime(folder, (old, old))
    day = {"contract_version": ACTIVITY.version, "partition_date": str(DAY)}

    assert parsed.claim("ab" * 32, file_format, rows, contract_version="0.9.0", partition_date=str(DAY)) is None
    kept_evaluation(path, "ab" * 32)  # that claim dropped the parse: an older contract's rows are never written
    first = parsed.claim("ab" * 32, file_format, rows, **day)
    second = parsed.claim("ab" * 32, file_format, rows, **day)

    assert first is not None and second is None
    with first:
        results = list(first.results("archive/activity_logs/2024-01-01/usage.jsonl"))
        assert sum(r.rows for r in results) == rows == 100
        assert {r.clean["_source_file"][0].as_py() for r in results} == {"archive/activity_logs/2024-01-01/usage.jsonl"}
    assert parsed.claim("ab" * 32, detect_format("usage.csv"), rows, **day) is None  # type: ignore[arg-type]
    kept_evaluation(path, "cd" * 32)  # the next publish sweeps what expired
    assert sorted(p.name for p in parsed_dir.iterdir()) == [parsed.address("cd" * 32, file_format)]


def test_a_file_heading_for_rejection_stops_being_kept_and_clean_still_gets_every_row(
    lake: LakeStore, parsed_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bad rows past the tolerated share end the keeping (a hostile file costs counting only); if the file is
    accepted after all (its bad rows were all at the start), clean parses the archive and loses nothing."""
    monkeypatch.setattr(formats, "JSONL_BLOCK_BYTES", 4096)
    monkeypatch.setattr(parsed, "ABANDON_AFTER_ROWS", 50)
    rows = [event(i) for i in range(1000)]
    for record in rows[:40]:
        record["event_type"] = "fax"  # 40 bad rows in the first blocks, 4% of the file (the contract tolerates 5%)
    lake.put_bytes(f"raw/activity_logs/{DAY}/usage.jsonl", "".join(json.dumps(r) + "\n" for r in rows).encode())

    assert not run_gate(lake, ACTIVITY, DAY).errors

    (entry,) = Ledger(lake).entries("activity_logs", DAY)
    assert entry.outcome == ARCHIVED
    assert not list(parsed_dir.iterdir()), "nothing kept for a file that looked like a rejection"
    clean, quarantine, files = cleaned(lake, "activity_logs")
    assert (len(clean), len(quarantine)) == (960, 40)
    assert files[0][2] == {"allowed_values": 40}
