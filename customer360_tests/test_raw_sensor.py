"""The raw/ sensor against a lake holding 10,000 objects, on both backends, with a real Dagster instance.

What a user would notice: a tick lists only what it must (the counts it reports), repeated ticks launch
nothing, a resend with new content launches a new run, a late file runs its own day only, files of one
day arriving together are one run, history is picked up in bounded batches, and the gate's run tag is
limited to one run per (dataset, day) by the project's dagster.yaml.
"""

from __future__ import annotations

import json
import shutil
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from customer360.defs.definitions import gate_job, unroutable_job
from customer360.defs.keys import GATE_JOB_NAME, GATE_TAG
from customer360.defs.resources.lake import LakeResource
from customer360.defs.sensors.raw_sensor import RawCursor, RawSensorSettings, build_raw_sensor
from customer360.lake.local import LocalLakeStore
from customer360.lake.s3 import S3LakeStore
from customer360.lake.store import LakeStore

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
TODAY = NOW.date()
ARCHIVED_OBJECTS = 8_000
OLD_RAW_DAYS = 20
OLD_RAW_PER_DAY = 100  # 2,000 raw objects on days far outside the look-back window
SETTINGS = RawSensorSettings(lookback_days=7, max_runs_per_tick=8, reconcile_minutes=60)


def _seed(store: LakeStore) -> float:
    """10,000 objects: archive history plus old raw days; returns the seconds it took."""
    started = time.perf_counter()
    keys = [
        f"archive/activity_logs/{date(2024, 1, 1) + timedelta(days=i % 40)}/usage-{i:05d}.csv"
        for i in range(ARCHIVED_OBJECTS)
    ]
    keys += [
        f"raw/activity_logs/{date(2024, 1, 1) + timedelta(days=d)}/usage-{n:03d}.csv"
        for d in range(OLD_RAW_DAYS)
        for n in range(OLD_RAW_PER_DAY)
    ]
    if isinstance(store, LocalLakeStore):
        for key in keys:  # written directly: the store's fsync per object would dominate the test
            path = store.local_path(key)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"x\n")
    else:
        assert isinstance(store, S3LakeStore)
        _put_into_moto_backend(store, keys, b"x\n")
    return time.perf_counter() - started


def _put_into_moto_backend(store: S3LakeStore, keys: list[str], data: bytes) -> None:
    """Seed objects through moto's in-process S3 backend: test setup, not what is under test.

    The ThreadedMotoServer runs in this process and serves from the same ``s3_backends`` registry, so the
    objects are real to every HTTP client (ETag, size, listing order); 10,000 PUTs over HTTP took ~60 s.
    The sensor still lists them through the real HTTP API.
    """
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    backend.get_bucket(store.bucket)  # raises if the server serves another backend: seeding would be invisible
    base = f"{store.prefix}/" if store.prefix else ""
    for key in keys:
        backend.put_object(store.bucket, base + key, data)


class Ticker:
    def __init__(self, store: LakeStore, resource: LakeResource, instance: dg.DagsterInstance) -> None:
        self.store, self.resource, self.instance = store, resource, instance
        self.sensor = build_raw_sensor(gate_job, unroutable_job, settings=SETTINGS, clock=lambda: NOW)
        self.cursor: str | None = None

    def tick(self) -> tuple[list[dg.RunRequest], dict]:
        context = dg.build_sensor_context(instance=self.instance, cursor=self.cursor, resources={"lake": self.resource})
        result = self.sensor(context)
        assert isinstance(result, dg.SensorResult)
        self.cursor = result.cursor
        self.observations = {(e.asset_key.to_user_string(), e.partition): e for e in result.asset_events}
        summary = RawCursor.load(self.cursor).last
        requests = list(result.run_requests or [])
        if not requests:
            assert result.skip_reason is not None and "no new files" in result.skip_reason.skip_message
        return requests, summary


@pytest.fixture
def ticker(lake: LakeStore, request: pytest.FixtureRequest) -> Ticker:
    if isinstance(lake, S3LakeStore):
        resource = LakeResource(location=lake.uri, endpoint_url=request.getfixturevalue("moto_server"))
    else:
        resource = LakeResource(location=lake.uri)
    with dg.instance_for_test() as instance:
        yield Ticker(lake, resource, instance)


def _days(requests: list[dg.RunRequest]) -> list[str]:
    return [r.partition_key for r in requests if r.job_name == GATE_JOB_NAME]


def test_ticks_over_ten_thousand_objects_list_only_what_they_must(ticker: Ticker, lake: LakeStore) -> None:
    seed_seconds = _seed(lake)

    # Turned on over history: a full scan of raw/ (never archive/), in bounded batches, oldest day first.
    requested: list[str] = []
    full_scans = []
    for _ in range(3):
        requests, summary = ticker.tick()
        assert summary["mode"] == "full_scan"
        assert summary["objects_listed"] == OLD_RAW_DAYS * OLD_RAW_PER_DAY  # archive/ is never listed
        assert len(requests) <= SETTINGS.max_runs_per_tick
        requested += _days(requests)
        full_scans.append(summary["seconds"])
    assert requested == [str(date(2024, 1, 1) + timedelta(days=d)) for d in range(OLD_RAW_DAYS)]

    # The history is all requested now. An ordinary tick lists the window's prefixes only: none of the
    # 10,000 objects.
    requests, summary = ticker.tick()
    assert requests == []
    assert summary["mode"] == "window"
    assert summary["prefixes_listed"] == 1 + 3 * (SETTINGS.lookback_days + 1)
    assert summary["objects_listed"] == 0
    window_seconds = summary["seconds"]
    print(
        f"\n[{type(lake).__name__}] seeded 10,000 objects in {seed_seconds:.1f}s; full-scan ticks "
        f"{full_scans} s; window tick {window_seconds:.3f} s"
    )

    # Two files of one day in one tick: one run for that day, tagged for the gate's concurrency limit.
    yesterday = TODAY - timedelta(days=1)
    lake.put_bytes(f"raw/customers/{yesterday}/crm_a.csv", b"a\n")
    lake.put_bytes(f"raw/customers/{yesterday}/crm_b.csv", b"b\n")
    requests, summary = ticker.tick()
    assert [(r.partition_key, r.tags[GATE_TAG]) for r in requests] == [(str(yesterday), f"customers/{yesterday}")]
    assert requests[0].asset_selection == [
        dg.AssetKey(["raw", "customers"]),
        dg.AssetKey(["archive", "customers"]),
        dg.AssetKey(["rejected", "customers"]),
    ]
    assert summary["objects_listed"] == 2 and summary["new_files"] == 2
    first_key = requests[0].run_key

    # The same files again: nothing.
    requests, summary = ticker.tick()
    assert requests == [] and summary["skipped"] == {"already_requested": 2}

    # A resend of one key with new content: a new run for that day, with a new run key.
    lake.put_bytes(f"raw/customers/{yesterday}/crm_b.csv", b"b, corrected\n")
    requests, _ = ticker.tick()
    assert _days(requests) == [str(yesterday)] and requests[0].run_key != first_key

    # The gate moved the files: the cursor forgets them, and a late file runs only its own day.
    lake.delete(f"raw/customers/{yesterday}/crm_a.csv")
    lake.delete(f"raw/customers/{yesterday}/crm_b.csv")
    late_day = TODAY - timedelta(days=5)
    lake.put_bytes(f"raw/activity_logs/{late_day}/usage-late.csv", b"late\n")
    requests, _ = ticker.tick()
    assert _days(requests) == [str(late_day)]
    seen = json.loads(ticker.cursor)["seen"]
    assert f"customers/{yesterday}" not in seen and len(seen[f"activity_logs/{late_day}"]) == 1

    # An unknown dataset: one run of the unroutable job, once.
    lake.put_bytes(f"raw/billing/{TODAY}/invoices.csv", b"i\n")
    requests, _ = ticker.tick()
    assert [r.job_name for r in requests] == [unroutable_job.name]
    assert ticker.tick()[0] == []


def test_dagster_yaml_limits_gate_runs_to_one_per_dataset_and_day(tmp_path: Path) -> None:
    shutil.copy(ROOT / "dagster.yaml", tmp_path / "dagster.yaml")
    instance = dg.DagsterInstance.from_config(str(tmp_path))
    try:
        queue = instance.get_concurrency_config().run_queue_config
        assert queue is not None
        assert {"key": GATE_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in (
            queue.tag_concurrency_limits
        )
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
    finally:
        instance.dispose()


def test_an_identical_resend_after_the_gate_moved_the_first_copy_gets_a_run_of_its_own(
    ticker: Ticker, lake: LakeStore
) -> None:
    ticker.tick()  # the first tick's full scan of an empty raw/
    key = f"raw/customers/{TODAY}/crm.csv"
    lake.put_bytes(key, b"same bytes\n")
    [first], _ = ticker.tick()
    lake.delete(key)  # the gate moved it
    ticker.tick()
    lake.put_bytes(key, b"same bytes\n")  # at once: S3 lists modification times in whole seconds
    [again], _ = ticker.tick()
    # Same key, ETag, size and (on S3, within the second) modification time. With the first run's run key
    # Dagster would skip it as already run, and the file would wait in raw/ forever.
    assert again.run_key != first.run_key


def test_files_waiting_in_raw_are_observed_on_their_raw_asset_day_when_what_waits_changes(
    ticker: Ticker, lake: LakeStore
) -> None:
    ticker.tick()  # the first tick's full scan of an empty raw/
    yesterday = TODAY - timedelta(days=1)
    lake.put_bytes(f"raw/customers/{yesterday}/crm.csv", b"id\n1\n")
    lake.put_bytes(f"raw/activity_logs/{TODAY}/usage-01.csv", b"abc\n")
    lake.put_bytes(f"raw/activity_logs/{TODAY}/usage-02.csv", b"defgh\n")

    ticker.tick()
    assert set(ticker.observations) == {
        ("raw/customers", yesterday.isoformat()),
        ("raw/activity_logs", TODAY.isoformat()),
    }
    activity = ticker.observations[("raw/activity_logs", TODAY.isoformat())].metadata
    assert (activity["files_waiting"].value, activity["bytes_waiting"].value) == (2, 10)
    assert activity["oldest_waiting_minutes"].value >= 0
    assert activity["gate_run"].value == "requested"
    assert f"raw/activity_logs/{TODAY}/usage-02.csv" in activity["files"].value

    ticker.tick()
    assert ticker.observations == {}, "nothing changed: no new observation"

    lake.delete(f"raw/customers/{yesterday}/crm.csv")  # the gate moved it
    ticker.tick()
    assert set(ticker.observations) == {("raw/customers", yesterday.isoformat())}
    assert ticker.observations[("raw/customers", yesterday.isoformat())].metadata["files_waiting"].value == 0
    ticker.tick()
    assert ticker.observations == {}
