"""Staging: big event days deduplicated bucket by bucket give exactly the one-query result."""

from __future__ import annotations

from datetime import date

import pyarrow as pa
import pytest

from customer360.contracts import ACTIVITY_LOGS
from customer360.generator import generate_demo_data
from customer360.ingest.gate import run_gate
from customer360.lake import layout
from customer360.zones import staging
from customer360.zones.clean import _read_parquet, clean_partition

DAY = date(2024, 1, 2)


def _staged(lake) -> pa.Table:
    keys = staging.parquet_keys(lake, layout.staging_prefix(ACTIVITY_LOGS.name, DAY))
    return _read_parquet(lake, keys, pa.schema([]))


def test_bucketed_dedup_equals_single_query(lake, monkeypatch: pytest.MonkeyPatch) -> None:
    generate_demo_data(lake.put_bytes, date(2024, 1, 1), 2, seed=5, customers=200, events_per_day=6_000,
                       hours_per_day=6)
    run_gate(lake, ACTIVITY_LOGS, DAY)
    clean_partition(lake, ACTIVITY_LOGS, DAY)

    single = staging.build_staging(lake, ACTIVITY_LOGS, DAY)
    one_query = _staged(lake)
    monkeypatch.setattr(staging, "STAGING_BUCKET_ROWS", 700)  # ~9 buckets
    monkeypatch.setattr(staging, "STAGING_ROWS_PER_FILE", 2_000)  # several part files
    bucketed = staging.build_staging(lake, ACTIVITY_LOGS, DAY)
    by_bucket = _staged(lake)

    assert len(single.keys) == 1 and len(bucketed.keys) > 1
    assert bucketed.rows == single.rows == one_query.num_rows
    assert by_bucket.num_rows == len(set(by_bucket["event_id"].to_pylist())), "one row per event_id"
    assert by_bucket.sort_by("event_id").equals(one_query.sort_by("event_id"))
    # Replaying the bucketed build gives the same rows.
    staging.build_staging(lake, ACTIVITY_LOGS, DAY)
    assert _staged(lake).sort_by("event_id").equals(by_bucket.sort_by("event_id"))
