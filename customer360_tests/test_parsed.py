"""Clean moves in the clean files the gate wrote while it judged a file, instead of typing the archive again:
same result.

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

import pyarrow.parquet as pq
import pytest

from customer360.contracts import DATASETS
from customer360.lake.ledger import ARCHIVED, REJECTED, Ledger
from customer360.lake.store import LakeStore
from customer360.processing import formats, parsed
from customer360.processing.clean_files import Arrival
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
    assert kept.name == parsed.address(entry.entry_id)
    assert pq.ParquetFile(kept / "clean.parquet").num_row_groups > (1 if name.endswith(".jsonl") else 0)
    assert (kept / "quarantine.parquet").exists(), "the bad rows are kept with the clean ones"
    # A few bad rows in each of many batches make one row group, not one per batch.
    assert pq.ParquetFile(kept / "quarantine.parquet").num_row_groups == 1

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
    for written in kept.glob("*.parquet"):  # what a wrong parse would hold: no rows at all
        pq.write_table(pq.read_table(written).slice(0, 0), written)

    clean, quarantine, _ = cleaned(lake, "activity_logs")

    assert len(clean) + len(quarantine) == entry.rows == 300
    assert not list(parsed_dir.iterdir())


ARRIVAL = Arrival("usage.jsonl", f"archive/activity_logs/{DAY}/usage.jsonl", "0123abcd")


def kept_evaluation(path: Path, arrival: Arrival = ARRIVAL) -> int:
    """Evaluate ``path`` as the gate does and publish the clean files it writes; the rows kept."""
    file_format = detect_format(path.name)
    assert file_format is not None
    batches = formats.StringBatches(path, file_format)
    tee = parsed.ParseTee(ACTIVITY, arrival, partition_date=str(DAY))
    with tee as keep:
        evaluator = ContractEvaluator(ACTIVITY, [], keep.source_file, DAY)
        for result in evaluate_stream(evaluator, batches, collect=lambda: keep.active):
            keep.keep(result)
        keep.publish()
    return keep.stats.rows


def test_one_consumer_claims_a_parse_and_leftovers_of_a_crash_expire(parsed_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "usage.jsonl"
    path.write_bytes(activity_jsonl(100))
    rows = kept_evaluation(path)
    # A gate killed mid-parse leaves an unfinished folder, a clean killed mid-read a claimed one.
    crashed = [parsed_dir / ".writing-x", parsed_dir / ".claimed-y"]
    for folder in crashed:
        folder.mkdir()
        old = time.time() - parsed.MAX_AGE_SECONDS - 60
        os.utime(folder, (old, old))
    day = {"contract_version": ACTIVITY.version, "partition_date": str(DAY)}

    assert parsed.claim(ARRIVAL, rows, contract_version="0.9.0", partition_date=str(DAY)) is None
    kept_evaluation(path)  # that claim dropped the parse: an older contract's rows are never written
    elsewhere = Arrival(ARRIVAL.source_name, ARRIVAL.archive_key + ".v2", ARRIVAL.entry_id)
    assert parsed.claim(elsewhere, rows, **day) is None  # archived under another key than the gate planned
    kept_evaluation(path)
    first = parsed.claim(ARRIVAL, rows, **day)
    second = parsed.claim(ARRIVAL, rows, **day)

    assert first is not None and second is None
    with first:
        clean = pq.read_table(first.clean_path)
        assert clean.num_rows + first.stats.quarantined_rows == rows == first.stats.rows == 100
        assert set(clean["_source_file"].to_pylist()) == {ARRIVAL.archive_key}
        footer = pq.ParquetFile(first.clean_path).schema_arrow.metadata
        assert footer[b"customer360.ledger_entry"] == ARRIVAL.entry_id.encode()
    assert not first.folder.exists(), "a claimed parse is removed once used"
    other = Arrival("usage.jsonl", ARRIVAL.archive_key, "4567ef01")
    kept_evaluation(path, other)  # the next publish sweeps what expired
    assert sorted(p.name for p in parsed_dir.iterdir()) == [parsed.address(other.entry_id)]


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


def test_a_clean_file_the_gate_cannot_write_ends_the_keeping_never_the_gate(
    lake: LakeStore, parsed_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk while the gate writes its clean files: the file is still judged and archived, nothing half
    written is left or used, and clean types the archive itself."""
    from customer360.processing import clean_files

    monkeypatch.setattr(formats, "JSONL_BLOCK_BYTES", 4096)
    written = clean_files.CleanFileWriter.write
    batches = 0

    def disk_fills_up(self: clean_files.CleanFileWriter, result: object) -> None:
        nonlocal batches
        batches += 1
        if batches == 3:
            raise OSError(28, "No space left on device")
        written(self, result)  # type: ignore[arg-type]

    monkeypatch.setattr(clean_files.CleanFileWriter, "write", disk_fills_up)
    lake.put_bytes(f"raw/activity_logs/{DAY}/usage.jsonl", activity_jsonl(600))

    assert not run_gate(lake, ACTIVITY, DAY).errors

    (entry,) = Ledger(lake).entries("activity_logs", DAY)
    assert entry.outcome == ARCHIVED and batches == 3, "nothing more is written once a write failed"
    assert not list(parsed_dir.iterdir())
    clean, quarantine, _ = cleaned(lake, "activity_logs")
    assert len(clean) + len(quarantine) == entry.rows == 600


def test_an_archive_key_taken_while_the_file_was_read_is_decided_again_and_clean_types_the_archive(
    lake: LakeStore, parsed_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gate plans the archive key before it reads a file; another gate run archiving other bytes under that
    name meanwhile makes the arrival a version beside them, and the clean files planned for the name are not used."""
    from customer360.steps import gate

    key = f"archive/activity_logs/{DAY}/usage.jsonl"
    theirs = activity_jsonl(50, seed=9)
    judged = gate.inspect_file

    def another_run_archives_first(*args: object, **kwargs: object) -> object:
        lake.put_bytes(key, theirs, create_only=True)
        return judged(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(gate, "inspect_file", another_run_archives_first)
    lake.put_bytes(f"raw/activity_logs/{DAY}/usage.jsonl", activity_jsonl(300))

    assert not run_gate(lake, ACTIVITY, DAY).errors

    (entry,) = Ledger(lake).entries("activity_logs", DAY)
    assert entry.outcome == ARCHIVED and entry.destination_key not in (None, key)
    assert lake.read_bytes(key) == theirs, "the other run's archive object is untouched"
    clean, quarantine, _ = cleaned(lake, "activity_logs")
    assert len(clean) + len(quarantine) == entry.rows == 300
    assert {row["_source_file"] for row in clean} == {entry.destination_key}
    assert not list(parsed_dir.iterdir()), "the files planned for the name were dropped, not used"
