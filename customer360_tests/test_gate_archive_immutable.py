"""No code path overwrites or deletes an archive object: every zone step, replays, resends, corrections.

Both backends. The archive is snapshotted (bytes and ETag of every object) after the first gate pass,
then everything that writes to the lake runs over it, some of it twice; every snapshotted object must
still be there, byte for byte, with the same ETag. Direct attempts through the store are refused.
"""

from __future__ import annotations

import hashlib
import time
from datetime import date, timedelta
from pathlib import Path

import pytest

from customer360.contracts import DATASETS
from customer360.lake.s3 import S3LakeStore
from customer360.lake.store import ImmutableZoneError, LakeStore, ObjectExistsError
from customer360.steps.clean import clean_partition
from customer360.steps.gate import run_gate
from customer360.steps.staging import build_staging
from customer360.steps.unroutable import reject_unroutable
from customer360_generator import generate_demo_data
from customer360_tests.corpus import customers_csv
from customer360_tests.pipeline_harness import make_pipeline

DAY = date(2024, 1, 1)
DAYS = [DAY, DAY + timedelta(days=1)]


def snapshot(store: LakeStore) -> dict[str, tuple[str, str | None]]:
    return {o.key: (hashlib.sha256(store.read_bytes(o.key)).hexdigest(), o.etag) for o in store.list("archive/")}


def every_step(store: LakeStore) -> None:
    for day in DAYS:
        for dataset in DATASETS.values():
            assert not run_gate(store, dataset, day).errors
    assert not reject_unroutable(store).errors
    for day in DAYS:
        for dataset in DATASETS.values():
            clean_partition(store, dataset, day)
        for dataset in DATASETS.values():
            build_staging(store, dataset, day)


def test_no_step_replay_resend_or_correction_touches_an_archived_object(
    lake: LakeStore, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    generate_demo_data(lake.put_bytes, DAY, len(DAYS), seed=5, customers=100, events_per_day=300, hours_per_day=2)
    every_step(lake)
    before = snapshot(lake)
    assert len(before) >= 6

    resent = next(key for key in before if key.startswith("archive/customers/"))
    if isinstance(lake, S3LakeStore):
        time.sleep(1.05)  # a later arrival, not the same S3 object again (key, ETag and second)
    lake.put_bytes(resent.replace("archive/", "raw/", 1), lake.read_bytes(resent))  # identical resend
    lake.put_bytes(resent.replace("archive/", "raw/", 1).replace(".csv", "-2.csv"), lake.read_bytes(resent))
    corrected = next(key for key in before if key.startswith("archive/plans/"))
    lake.put_bytes(corrected.replace("archive/", "raw/", 1), lake.read_bytes(corrected) + b"\n")  # a correction
    every_step(lake)  # a replay of every day and zone, with the resends and the correction
    endpoint = request.getfixturevalue("moto_server") if isinstance(lake, S3LakeStore) else None
    pipeline = make_pipeline(lake, tmp_path, endpoint)
    pipeline.run_day(DAY)  # the Dagster job too (a replay of every zone), whatever downstream checks conclude

    after = snapshot(lake)
    assert {key: after.get(key) for key in before} == before, "every archived object unchanged, none gone"
    assert len(after) == len(before) + 1, "only the correction was added, beside its old version"


def test_the_stores_refuse_to_overwrite_or_delete_archive_objects(lake: LakeStore, tmp_path: Path) -> None:
    key = f"archive/customers/{DAY}/crm.csv"
    original = customers_csv().encode()
    lake.put_bytes(key, original, create_only=True)
    other = tmp_path / "other.csv"
    other.write_bytes(b"other bytes")

    with pytest.raises(ImmutableZoneError):
        lake.put_bytes(key, b"overwrite")
    with pytest.raises(ImmutableZoneError):
        lake.put_file(key, other)
    with pytest.raises(ObjectExistsError):
        lake.put_bytes(key, b"overwrite", create_only=True)
    with pytest.raises(ObjectExistsError):
        lake.put_file(key, other, create_only=True)
    with pytest.raises(ImmutableZoneError):
        lake.delete(key)
    for prefix in ("archive/", f"archive/customers/{DAY}/", "arch", ""):
        with pytest.raises(ImmutableZoneError):
            lake.delete_prefix(prefix)
    assert lake.read_bytes(key) == original
    assert [o.key for o in lake.list("archive/")] == [key]
