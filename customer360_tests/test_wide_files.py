"""A file far wider than its contract is refused at the gate; within the limit, unknown fields cost linear time.

Unknown fields are kept per row as JSON in ``_rescued_data`` (nothing is dropped), so their number is
bounded by the contract's declared ``max_columns``: a customers file with 50,000 unknown columns once
made clean quadratic and staging run out of memory. Within the limit, the JSON is built with a fixed
number of Arrow kernel calls however many fields there are.
"""

from __future__ import annotations

import json
from datetime import date

import pyarrow as pa
import pyarrow.compute
import pytest

from customer360.contracts import DATASETS
from customer360.lake.ledger import ARCHIVED, REJECTED, Ledger
from customer360.lake.store import LakeStore
from customer360.processing.standardize import json_objects
from customer360.steps.clean import clean_partition, read_clean
from customer360.steps.gate import run_gate
from customer360_tests.corpus import CUSTOMERS_HEADER, customer_row, event

DAY = date(2024, 1, 1)
CUSTOMERS = DATASETS["customers"]
KNOWN = len(CUSTOMERS_HEADER.split(","))


def wide_customers(unknown: int, rows: int = 5) -> bytes:
    header = CUSTOMERS_HEADER + "".join(f",loyalty_{i}" for i in range(unknown))
    lines = [customer_row(r) + "".join(f",v{r}.{i}" for i in range(unknown)) for r in range(rows)]
    return ("\n".join([header, *lines]) + "\n").encode()


def test_a_customers_file_with_50000_unknown_columns_is_rejected_with_its_width(lake: LakeStore) -> None:
    lake.put_bytes(f"raw/customers/{DAY}/crm-wide.csv", wide_customers(50_000))

    assert not run_gate(lake, CUSTOMERS, DAY).errors

    (entry,) = Ledger(lake).entries("customers", DAY)
    assert (entry.outcome, entry.reasons) == (REJECTED, ("too_many_columns",))
    report = json.loads(lake.read_bytes(str(entry.report_key)))
    (failed,) = report["failed_checks"]
    assert failed["count"] == KNOWN + 50_000
    assert f"{KNOWN + 50_000:,} fields" in failed["message"] and str(CUSTOMERS.max_columns) in failed["message"]
    assert failed["samples"][0]["unknown"][:2] == ["loyalty_0", "loyalty_1"]
    assert "max_columns" in failed["action"]


def test_a_file_at_the_limit_keeps_every_unknown_field_of_every_row(lake: LakeStore) -> None:
    unknown = CUSTOMERS.max_columns - KNOWN
    lake.put_bytes(f"raw/customers/{DAY}/crm-at-limit.csv", wide_customers(unknown))

    run_gate(lake, CUSTOMERS, DAY)
    (entry,) = Ledger(lake).entries("customers", DAY)
    assert entry.outcome == ARCHIVED
    result = clean_partition(lake, CUSTOMERS, DAY)

    assert result.rows_clean == 5 and len(result.rescued_columns) == unknown
    rescued = [
        json.loads(r) for r in read_clean(lake, CUSTOMERS, DAY).sort_by("_source_line")["_rescued_data"].to_pylist()
    ]
    assert rescued == [{f"loyalty_{i}": f"v{r}.{i}" for i in range(unknown)} for r in range(5)]


def test_a_json_lines_file_growing_past_the_limit_mid_file_is_rejected(lake: LakeStore) -> None:
    activity = DATASETS["activity_logs"]
    lines = [json.dumps(event(i)) for i in range(3)]
    lines.append(json.dumps({**event(3), **{f"probe_{i}": i for i in range(activity.max_columns)}}))
    lake.put_bytes(f"raw/activity_logs/{DAY}/events.jsonl", ("\n".join(lines) + "\n").encode())

    run_gate(lake, activity, DAY)

    (entry,) = Ledger(lake).entries("activity_logs", DAY)
    assert (entry.outcome, entry.reasons) == (REJECTED, ("too_many_columns",))


@pytest.mark.parametrize("width", [3, 300])
def test_rescued_json_takes_the_same_kernel_calls_however_many_fields(
    width: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Linear in rows times fields: no call per field (the old per-field loop made wide files crawl)."""
    calls: list[str] = []
    for name in ("binary_join_element_wise", "replace_substring", "take", "fill_null", "binary_join"):
        real = getattr(pyarrow.compute, name)
        monkeypatch.setattr(
            pyarrow.compute, name, lambda *a, _real=real, _name=name, **k: calls.append(_name) or _real(*a, **k)
        )
    columns = [pa.array([f"a{i}", None, 'q"\\'], pa.string()) for i in range(width)]

    objects = json_objects([f"f{i}" for i in range(width)], columns)

    assert json.loads(objects[2].as_py()) == {f"f{i}": 'q"\\' for i in range(width)}
    assert json.loads(objects[1].as_py()) == dict.fromkeys((f"f{i}" for i in range(width)), None)
    assert len(calls) <= 10, calls
