"""Rejection reports stay small for big bad files, and the row threshold is the dataset's own.

A report quotes the file (bounded samples with line numbers and offending values) and counts every
failure, but never grows with the file: a person must be able to open it, and rejected/ already holds
the bytes.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import replace
from pathlib import Path

import pytest

from customer360.contracts import DATASETS
from customer360.lake.ledger import ARCHIVED, REJECTED, Ledger
from customer360.lake.store import LakeStore
from customer360.processing.formats import MAX_SAMPLES
from customer360.processing.inspect import inspect_file
from customer360.steps.gate import run_gate
from customer360_tests.corpus import CUSTOMERS_HEADER, DAY, customer_row

CUSTOMERS = DATASETS["customers"]
ROWS = 40_000
REPORT_LIMIT = 32 * 1024


def big(rows: int, row: str) -> bytes:
    return (CUSTOMERS_HEADER + "\n" + "".join(f"{row}\n" for _ in range(rows))).encode("latin-1")


@pytest.mark.parametrize(
    ("name", "data", "reason", "count"),
    [
        ("latin1-everywhere.csv", big(ROWS, customer_row(1, payment="Ch\xe8que " + "x" * 300)), "not_utf8", ROWS),
        (
            "bad-types.csv.gz",
            gzip.compress(big(ROWS, customer_row(1, tenure="x" * 500)), mtime=0),
            "too_many_bad_rows",
            ROWS,
        ),
        ("ragged.csv", big(ROWS, customer_row(1) + "," + "y" * 400), "wrong_field_count", ROWS),
        ("one-giant-line.csv", big(1, customer_row(1, payment="z" * (3 << 20))), "line_too_long", 1),
    ],
)
def test_report_of_a_big_bad_file_is_small_but_complete(
    lake: LakeStore, name: str, data: bytes, reason: str, count: int
) -> None:
    assert len(data) > 1 << 20 or name.endswith(".gz")
    lake.put_bytes(f"raw/customers/{DAY}/{name}", data)

    assert not run_gate(lake, CUSTOMERS, DAY).errors

    (entry,) = Ledger(lake).entries("customers", DAY)
    assert (entry.outcome, entry.reasons) == (REJECTED, (reason,))
    report_bytes = lake.read_bytes(str(entry.report_key))
    assert len(report_bytes) < REPORT_LIMIT, f"report is {len(report_bytes)} bytes for a {len(data)}-byte file"
    (failed,) = json.loads(report_bytes)["failed_checks"]
    assert failed["count"] == count, "every failure counted"
    assert 1 <= len(failed["samples"]) <= MAX_SAMPLES
    assert failed["samples"][0]["line"] == 2, "samples name their line"
    assert all(len(str(value)) <= 210 for sample in failed["samples"] for value in sample.values())


def test_row_threshold_is_the_datasets_own(tmp_path: Path) -> None:
    """Six rows, one breaking a rule (17%): refused under the 5% contract, archived under a 20% one."""
    path = tmp_path / "crm.csv"
    path.write_text("\n".join([CUSTOMERS_HEADER, *(customer_row(i) for i in range(5)), customer_row(9, tenure="-1")]))

    strict = inspect_file(CUSTOMERS, path, "crm.csv", DAY, path.stat().st_size)
    assert (strict.accepted, strict.reasons) == (False, ["too_many_bad_rows"])
    assert strict.policy(CUSTOMERS)["level"] == "row"

    tolerant_contract = replace(CUSTOMERS, max_bad_row_share=0.2)
    tolerant = inspect_file(tolerant_contract, path, "crm.csv", DAY, path.stat().st_size)
    assert tolerant.accepted and tolerant.bad_rows == 1
    assert tolerant.policy(tolerant_contract) | {"bad_row_share": None} == {
        "level": None,
        "max_bad_row_share": 0.2,
        "bad_row_share": None,
        "rows": 6,
        "bad_rows": 1,
        "rows_checked": True,
        "threshold_from": f"contract customers {CUSTOMERS.version}: max_bad_row_share",
    }


def test_a_file_under_the_threshold_is_archived_and_its_bad_rows_quarantined_downstream(lake: LakeStore) -> None:
    rows = [customer_row(i) for i in range(99)] + [customer_row(99, tenure="-5")]
    lake.put_bytes(f"raw/customers/{DAY}/crm.csv", "\n".join([CUSTOMERS_HEADER, *rows]).encode())
    run_gate(lake, CUSTOMERS, DAY)
    (entry,) = Ledger(lake).entries("customers", DAY)
    assert entry.outcome == ARCHIVED
    assert entry.details["bad_rows"] == 1 and entry.details["rule_counts"] == {"minimum": 1}
    from customer360.steps.clean import clean_partition, read_quarantine

    clean_partition(lake, CUSTOMERS, DAY)
    quarantined = read_quarantine(lake, CUSTOMERS, DAY).to_pylist()
    assert [(q["_source_line"], q["rule"], q["column"], q["value"]) for q in quarantined] == [
        (101, "minimum", "tenure", "-5")
    ]
