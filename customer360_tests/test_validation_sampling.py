"""Big partitions: pandera validates a spread sample of row groups, small ones every row."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from customer360.checks.models import clean_model
from customer360.checks.validate import validate_files
from customer360.contracts import PLANS
from customer360.contracts.schemas import clean_schema
from customer360.processing.standardize import ContractEvaluator

DAY = date(2024, 1, 1)


def _clean_file(path: Path, rows: int, *, bad_fee_at: int | None = None) -> Path:
    header = list(PLANS.source_names)
    values = {name: [] for name in header}
    for i in range(rows):
        for name, value in zip(
            header, [f"P{i}", "Basic", "Month-to-month", "10.00", "5", "100", "100", "2024-01-01", ""], strict=True
        ):
            values[name].append(value)
    batch = pa.RecordBatch.from_pydict({k: pa.array(v, pa.string()) for k, v in values.items()})
    clean = ContractEvaluator(PLANS, header, "archive/plans/2024-01-01/p.csv", DAY).evaluate(batch, 2).clean
    assert clean is not None
    if bad_fee_at is not None:  # a defect written after the contract evaluator: what the check guards
        fees = clean.column("monthly_fee").to_pylist()
        fees[bad_fee_at] = -fees[bad_fee_at]
        clean = clean.set_column(
            clean.schema.get_field_index("monthly_fee"),
            "monthly_fee",
            pa.array(fees, clean.schema.field("monthly_fee").type),
        )
    pq.write_table(clean.cast(clean_schema(PLANS)), path, row_group_size=100)
    return path


def test_small_partition_is_validated_row_by_row(tmp_path: Path) -> None:
    path = _clean_file(tmp_path / "p.parquet", 1_000, bad_fee_at=950)
    result = validate_files([path], clean_model(PLANS, DAY))
    assert result.rows == result.rows_validated == 1_000
    assert result.of("value_ranges").count == 1


def test_big_partition_is_sampled_but_every_row_counted(tmp_path: Path) -> None:
    path = _clean_file(tmp_path / "p.parquet", 1_000, bad_fee_at=5)
    result = validate_files([path], clean_model(PLANS, DAY), full_rows=500, sample_rows=300)
    assert result.rows == 1_000, "every row is still counted (and tracked for freshness, rescued data)"
    assert 200 <= result.rows_validated <= 400
    assert result.of("value_ranges").count == 1, "the first row group of every file is always validated"
