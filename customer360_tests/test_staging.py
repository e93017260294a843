"""Staging of events: one row per event_id, the first copy by source file and line, on any size of day."""

from __future__ import annotations

from datetime import date

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from customer360.contracts import ACTIVITY_LOGS
from customer360.lake import layout
from customer360.lake.transfer import parquet_keys
from customer360.steps import staging
from customer360.steps.clean import _read_parquet, clean_partition, read_clean
from customer360.steps.gate import run_gate
from customer360_generator import generate_demo_data

DAY = date(2024, 1, 2)
LINEAGE = ["event_id", "_source_file", "_source_line"]


def _staged(lake) -> pa.Table:
    keys = parquet_keys(lake, layout.staging_prefix(ACTIVITY_LOGS.name, DAY))
    return _read_parquet(lake, keys, pa.schema([]))


def _first_copies(clean: pa.Table) -> pa.Table:
    """What the contract says staging keeps, computed independently: per event_id, the lowest (file, line)."""
    ordered = clean.select(LINEAGE).sort_by([(c, "ascending") for c in LINEAGE])
    ids = ordered["event_id"].to_pylist()
    keep = [i == 0 or ids[i] != ids[i - 1] for i in range(len(ids))]
    return ordered.filter(pa.array(keep))


@pytest.fixture
def day_with_repeats(lake):
    generate_demo_data(
        lake.put_bytes, date(2024, 1, 1), 2, seed=5, customers=200, events_per_day=6_000, hours_per_day=6
    )
    run_gate(lake, ACTIVITY_LOGS, DAY)
    clean_partition(lake, ACTIVITY_LOGS, DAY)
    clean = read_clean(lake, ACTIVITY_LOGS, DAY)
    expected = _first_copies(clean)
    assert expected.num_rows < clean.num_rows, "the generated day repeats some events"
    return lake, expected


def test_small_day_keeps_first_copy_sorted_by_key(day_with_repeats) -> None:
    lake, expected = day_with_repeats
    result = staging.build_staging(lake, ACTIVITY_LOGS, DAY)
    staged = _staged(lake)

    assert result.rows == staged.num_rows == expected.num_rows
    assert result.duplicates_dropped == result.input_rows - expected.num_rows > 0
    assert staged["event_id"].to_pylist() == sorted(staged["event_id"].to_pylist())
    assert staged.select(LINEAGE).sort_by("event_id").to_pydict() == expected.to_pydict()


def test_big_day_unsorted_in_several_files_keeps_the_same_rows(day_with_repeats, monkeypatch) -> None:
    lake, expected = day_with_repeats
    monkeypatch.setattr(staging, "STAGING_SORTED_MAX_ROWS", 0)
    monkeypatch.setattr(staging, "STAGING_FILE_BYTES", "50KB")
    monkeypatch.setattr(staging, "STAGING_ROW_GROUP_ROWS", 1_000)
    result = staging.build_staging(lake, ACTIVITY_LOGS, DAY)
    staged = _staged(lake)

    assert len(result.keys) > 1
    assert result.rows == staged.num_rows == expected.num_rows
    assert staged.select(LINEAGE).sort_by("event_id").to_pydict() == expected.to_pydict()
    assert pc.count_distinct(staged["event_id"]).as_py() == staged.num_rows
    # Replaying the day gives the same rows.
    staging.build_staging(lake, ACTIVITY_LOGS, DAY)
    assert _staged(lake).select(LINEAGE).sort_by("event_id").to_pydict() == expected.to_pydict()


def test_a_day_without_clean_rows_leaves_no_stale_staging_files(day_with_repeats) -> None:
    lake, _ = day_with_repeats
    assert staging.build_staging(lake, ACTIVITY_LOGS, DAY).keys
    lake.delete_prefix(layout.clean_prefix(ACTIVITY_LOGS.name, DAY))  # e.g. the day's only file was withdrawn

    result = staging.build_staging(lake, ACTIVITY_LOGS, DAY)

    assert result.keys == [] and result.rows == 0 and result.input_rows == 0
    assert parquet_keys(lake, layout.staging_prefix(ACTIVITY_LOGS.name, DAY)) == []
