"""A snapshot is never built over a missing or failed predecessor (issue 12, item 3), on both lake backends.

What a user noticed: when a day's files never made it through (gate not run, clean or staging failed),
the next day's customers snapshot was rebuilt from whatever clean partitions existed and succeeded with
10 customers instead of 60, and the warehouse loaded it. Now the staging step refuses, naming the day and
what to run; the warehouse load and the mart refuse a day whose staging did not complete; ``customer360
replay`` stops at the failed day. Carrying a snapshot across days that genuinely have no files still works.
"""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pytest

from customer360.cli import main
from customer360.contracts import DATASETS
from customer360.defs.assets import staging as staging_assets
from customer360.defs.keys import MART_KEY
from customer360.defs.resources.lake import LakeResource
from customer360.lake import layout
from customer360.lake.s3 import S3LakeStore
from customer360.lake.store import LakeStore
from customer360.lake.transfer import parquet_keys
from customer360.steps import staging
from customer360.steps.clean import _read_parquet, clean_partition
from customer360.steps.mart import MART_TABLE
from customer360.steps.staging import SnapshotPredecessorError, read_staging_manifest
from customer360_tests.pipeline_harness import Pipeline, make_pipeline
from customer360_tests.test_contracts import customers_csv

DAY1, DAY2, DAY3 = date(2024, 1, 1), date(2024, 1, 2), date(2024, 1, 3)
CUSTOMERS = DATASETS["customers"]
MART = MART_KEY.to_user_string()
PLANS = DATASETS["plans"]
ACTIVITY = DATASETS["activity_logs"]


@pytest.fixture
def pipeline(lake: LakeStore, tmp_path: Path, request: pytest.FixtureRequest) -> Pipeline:
    endpoint = request.getfixturevalue("moto_server") if isinstance(lake, S3LakeStore) else None
    return make_pipeline(lake, tmp_path, endpoint)


def _land_customers(store: LakeStore, day: date, first: int, count: int) -> None:
    ids = [f"{i:04d}-ABCDE" for i in range(first, first + count)]
    store.put_bytes(f"raw/customers/{day}/crm.csv", customers_csv(ids))


def _failures(result: dg.ExecuteInProcessResult) -> dict[str, str]:
    """Failed step -> the message of the error its code raised (what the UI shows for the step)."""
    failures = {}
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data is not None:
            error = event.step_failure_data.error
            while error.cause is not None and error.cls_name.startswith("Dagster"):
                error = error.cause
            failures[(event.step_key or "").replace("__", "/")] = error.message
    return failures


def _materialized(result: dg.ExecuteInProcessResult, asset: str) -> bool:
    return any(e.asset_key == dg.AssetKey(asset.split("/")) for e in result.get_asset_materialization_events())


def _staged_ids(store: LakeStore, day: date) -> set[str]:
    table = _read_parquet(store, parquet_keys(store, layout.staging_prefix("customers", day)), pa.schema([]))
    return set(table["customer_id"].to_pylist()) if table.num_rows else set()


def test_a_snapshot_over_a_day_whose_files_never_went_through_fails_naming_that_day(pipeline: Pipeline) -> None:
    """Day 1's 50 customers are still in raw/ (its gate never ran): day 2 must not become a 10-customer snapshot."""
    _land_customers(pipeline.store, DAY1, 0, 50)
    _land_customers(pipeline.store, DAY2, 50, 10)

    result = pipeline.run_day(DAY2)

    assert not result.success
    # Both snapshots refuse (day 1 has files, so it must have both); customers waits for plans (its join).
    message = _failures(result)["staging/plans"]
    assert "2024-01-01 has files but no completed plans snapshot" in message
    assert "customer360 replay --start 2024-01-01 --end 2024-01-02" in message
    assert not _materialized(result, "staging/customers")
    assert read_staging_manifest(pipeline.store, CUSTOMERS, DAY2) is None
    with pytest.raises(SnapshotPredecessorError, match="2024-01-01 has files but no completed customers snapshot"):
        staging.build_staging(pipeline.store, CUSTOMERS, DAY2, first_day=DAY1)
    assert not _materialized(result, "warehouse/customers") and not _materialized(result, MART)

    # In order, the same days give the whole snapshot.
    assert pipeline.run_day(DAY1).success
    assert pipeline.run_day(DAY2).success
    assert len(_staged_ids(pipeline.store, DAY2)) == 60
    assert pipeline.warehouse_rows("customers", DAY2) == 60
    mart = pipeline.warehouse.open(pipeline.store).query(
        f"SELECT count(*) FROM {MART_TABLE} WHERE mart_date = ?", [DAY2]
    )
    assert mart[0][0] == 60


def test_a_snapshot_over_a_failed_staging_day_fails_and_keeps_the_warehouse(pipeline: Pipeline) -> None:
    """Day 1 re-staged and crashed: day 2's snapshot is not rebuilt on the files the failed attempt left."""
    _land_customers(pipeline.store, DAY1, 0, 50)
    _land_customers(pipeline.store, DAY2, 50, 10)
    assert pipeline.run_day(DAY1).success and pipeline.run_day(DAY2).success
    assert pipeline.warehouse_rows("customers", DAY2) == 60
    # A clean file of day 1 is unreadable, so day 1's staging fails (e.g. a disk or a tool corrupted it).
    (clean_key,) = parquet_keys(pipeline.store, layout.clean_prefix("customers", DAY1))
    pipeline.store.put_bytes(clean_key, b"not parquet")
    day1 = pipeline.run_day(DAY1, selection=["staging/customers"])
    assert not day1.success and read_staging_manifest(pipeline.store, CUSTOMERS, DAY1) is None

    day2 = pipeline.run_day(DAY2, selection=["staging/customers", "warehouse/customers"])

    assert not day2.success
    assert "2024-01-01 has files but no completed customers snapshot" in _failures(day2)["staging/customers"]
    assert pipeline.warehouse_rows("customers", DAY2) == 60, "the warehouse keeps the last complete snapshot"


def test_snapshots_carry_across_days_without_files(pipeline: Pipeline) -> None:
    """No file at all on day 2 (the automation builds nothing that day): day 3 builds on day 1's snapshot."""
    _land_customers(pipeline.store, DAY1, 0, 50)
    _land_customers(pipeline.store, DAY3, 50, 10)
    assert pipeline.run_day(DAY1).success

    assert pipeline.run_day(DAY3).success

    manifest = read_staging_manifest(pipeline.store, CUSTOMERS, DAY3)
    assert manifest is not None and manifest.built_on == DAY1 and manifest.rows == 60
    assert len(_staged_ids(pipeline.store, DAY3)) == 60
    assert pipeline.warehouse_rows("customers", DAY3) == 60


def _gate_and_clean(store: LakeStore, dataset_name: str, day: date) -> None:
    from customer360.steps.gate import run_gate

    dataset = DATASETS[dataset_name]
    assert not run_gate(store, dataset, day).errors
    clean_partition(store, dataset, day)


def test_when_a_snapshot_may_be_rebuilt_from_history(lake: LakeStore) -> None:
    """The rules of ``snapshot_basis``, step by step on one lake."""
    day0 = DAY1 - timedelta(days=1)
    _land_customers(lake, day0, 0, 5)  # before the first day of the partitions: history, not a predecessor
    _gate_and_clean(lake, "customers", day0)
    _land_customers(lake, DAY1, 5, 5)
    _gate_and_clean(lake, "customers", DAY1)

    # The first day of the partitions: rebuilt from every clean day up to it.
    first = staging.build_staging(lake, CUSTOMERS, DAY1, first_day=DAY1)
    assert first.rebuilt_from_history and first.rows == 10
    # Without a first day, day 0 is a predecessor with files and no snapshot: refused, naming it.
    with pytest.raises(SnapshotPredecessorError, match="2023-12-31 has files"):
        staging.build_staging(lake, CUSTOMERS, DAY1)
    assert read_staging_manifest(lake, CUSTOMERS, DAY1) is None, "a refused build leaves the day unstaged"
    assert staging.build_staging(lake, CUSTOMERS, DAY1, first_day=DAY1).rows == 10

    # Day 2 has no file of any dataset; day 3 has only an activity file still waiting in raw/.
    lake.put_bytes(f"raw/activity_logs/{DAY3}/hour-01.jsonl", b'{"event_id": "e"}\n')
    day4 = DAY3 + timedelta(days=1)
    with pytest.raises(SnapshotPredecessorError) as refused:
        staging.build_staging(lake, CUSTOMERS, day4, first_day=DAY1)
    assert refused.value.missing == [DAY3]
    assert "customer360 replay --start 2024-01-03 --end 2024-01-04" in str(refused.value)

    # Once day 3 has its snapshot, day 4 builds on it; day 3 itself carried day 1's across day 2.
    day3 = staging.build_staging(lake, CUSTOMERS, DAY3, first_day=DAY1)
    assert (day3.built_on, day3.rows) == (DAY1, 10)
    assert staging.build_staging(lake, CUSTOMERS, day4, first_day=DAY1).built_on == DAY3


def test_the_warehouse_and_the_mart_refuse_a_day_whose_staging_did_not_complete(
    pipeline: Pipeline, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Pointed at a lake where staging never ran for the day, the load and the mart change nothing."""
    _land_customers(pipeline.store, DAY1, 0, 40)
    assert pipeline.run_day(DAY1).success
    target = pipeline.warehouse.open(pipeline.store)
    mart_rows = f"SELECT count(*) FROM {MART_TABLE} WHERE mart_date = ?"
    assert pipeline.warehouse_rows("customers", DAY1) == 40 and target.query(mart_rows, [DAY1])[0][0] == 40

    # Another (existing, empty) lake: its staging prefix for the day is empty because nothing ever ran.
    if isinstance(pipeline.store, S3LakeStore):
        bucket = f"{pipeline.store.bucket}-other"
        pipeline.store.client.create_bucket(Bucket=bucket)
        other = LakeResource(location=f"s3://{bucket}", endpoint_url=request.getfixturevalue("moto_server"))
    else:
        (tmp_path / "other-lake").mkdir()
        other = LakeResource(location=str(tmp_path / "other-lake"))
    elsewhere = Pipeline(pipeline.store, other, pipeline.warehouse, pipeline.instance)

    load = elsewhere.run_day(DAY1, selection=["warehouse/customers"])
    mart = elsewhere.run_day(DAY1, selection=[MART])

    assert not load.success and "has no completed build for 2024-01-01" in _failures(load)["warehouse/customers"]
    assert not mart.success and "no completed staging" in _failures(mart)[MART]
    assert pipeline.warehouse_rows("customers", DAY1) == 40 and target.query(mart_rows, [DAY1])[0][0] == 40

    # The right lake, but the warehouse's customers day is not the staged snapshot: the mart waits for the load.
    target.delete_partition("customers", DAY1)
    mart = pipeline.run_day(DAY1, selection=[MART])
    assert not mart.success
    refused = _failures(mart)[MART]
    assert "holds 0 customers for 2024-01-01, the day's staged snapshot 40" in refused
    assert target.query(mart_rows, [DAY1])[0][0] == 40


def test_replay_stops_at_a_failed_day_and_says_so(
    lake: LakeStore, cli_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Replaying from day 2 when day 1 never ran: day 2 fails, the replay stops there and exits non-zero."""
    for day, first in ((DAY1, 0), (DAY2, 50), (DAY3, 60)):
        _land_customers(lake, day, first, 50 if day == DAY1 else 10)

    code = main(["replay", "--start", "2024-01-02", "--end", "2024-01-03"])

    out, err = capsys.readouterr()
    assert code == 1
    assert "2024-01-02" in out and "FAILED" in out and "2024-01-03" not in out, "day 3 is not run"
    assert "2024-01-01 has files but no completed" in out, "the failed step says why, in one line"
    assert "Traceback" not in out + err
    assert "stopped at 2024-01-02" in err and "2024-01-03...2024-01-03 not replayed" in err
    assert "customer360 replay --start 2024-01-02 --end 2024-01-03" in err
    instance = dg.DagsterInstance.from_config(str(cli_home))
    try:
        assert [r.tags.get("dagster/partition") for r in instance.get_runs()] == ["2024-01-02"]
    finally:
        instance.dispose()

    assert main(["replay", "--start", "2024-01-01", "--end", "2024-01-03"]) == 0
    assert len(_staged_ids(lake, DAY3)) == 70


def _requested(pipeline: Pipeline, cursor: object) -> tuple[set[tuple[str, date]], object]:
    evaluation = dg.evaluate_automation_conditions(defs=pipeline.defs, instance=pipeline.instance, cursor=cursor)
    requested = {
        (key.to_user_string(), date.fromisoformat(partition))
        for key in pipeline.defs.resolve_asset_graph().get_all_asset_keys()
        for partition in evaluation.get_requested_partitions(key)
    }
    return requested, evaluation.cursor


def test_the_automation_waits_for_a_failed_previous_snapshot_instead_of_building_over_it(pipeline: Pipeline) -> None:
    """A late customers file for day 2 while day 1's snapshot has failed: day 2 is built once day 1 is fixed."""
    _land_customers(pipeline.store, DAY1, 0, 50)
    _land_customers(pipeline.store, DAY2, 50, 10)
    assert pipeline.run_day(DAY1).success and pipeline.run_day(DAY2).success
    (clean_key,) = parquet_keys(pipeline.store, layout.clean_prefix("customers", DAY1))
    pipeline.store.put_bytes(clean_key, b"not parquet")
    assert not pipeline.run_day(DAY1, selection=["staging/customers"]).success
    _, cursor = _requested(pipeline, None)
    gate_and_clean = ["raw/customers", "archive/customers", "rejected/customers", "clean/customers"]
    pipeline.store.put_bytes(f"raw/customers/{DAY2}/crm-late.csv", customers_csv(["0900-ABCDE"]))
    assert pipeline.run_day(DAY2, selection=gate_and_clean).success

    requested, cursor = _requested(pipeline, cursor)

    assert ("staging/customers", DAY2) not in requested, "not built over the failed day-1 snapshot"
    assert read_staging_manifest(pipeline.store, CUSTOMERS, DAY2) is not None, "day 2 keeps its last snapshot"

    assert pipeline.run_day(DAY1, selection=["clean/customers", "staging/customers"]).success  # clean from archive/
    requested, _ = _requested(pipeline, cursor)
    assert ("staging/customers", DAY2) in requested


def test_a_load_queued_behind_a_rebuild_of_its_day_waits_for_it_instead_of_failing(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A late file rebuilds a day's staging while the day's warehouse load was already queued: the load waits.

    Seen on the production daemon: the load started while the rebuild had removed the old manifest and not
    yet written the new one, and failed. Now a build in progress is visible to the load, which retries.
    """
    monkeypatch.setattr(staging_assets, "WAIT_FOR_BUILD_SECONDS", 1)
    _land_customers(pipeline.store, DAY1, 0, 40)
    assert pipeline.run_day(DAY1).success
    late_ids = [f"{i:04d}-ABCDE" for i in range(40, 45)]
    pipeline.store.put_bytes(f"raw/customers/{DAY1}/crm-late.csv", customers_csv(late_ids))  # gate + clean take it
    assert pipeline.run_day(
        DAY1, selection=["raw/customers", "archive/customers", "rejected/customers", "clean/customers"]
    ).success

    # The rebuild has started (another run's process): its marker is there, the old manifest is gone.
    staging.build_staging(pipeline.store, CUSTOMERS, DAY1, first_day=DAY1, commit=False)  # removes the manifest
    assert read_staging_manifest(pipeline.store, CUSTOMERS, DAY1) is None
    assert staging.staging_build_started(pipeline.store, CUSTOMERS, DAY1) is not None

    finished = threading.Timer(3.0, lambda: staging.build_staging(pipeline.store, CUSTOMERS, DAY1, first_day=DAY1))
    finished.start()
    try:
        load = pipeline.run_day(DAY1, selection=["warehouse/customers"])
    finally:
        finished.join()
    assert load.success, _failures(load)
    assert pipeline.warehouse_rows("customers", DAY1) == 45
    assert staging.staging_build_started(pipeline.store, CUSTOMERS, DAY1) is None  # the commit cleared it


def test_a_build_that_fails_clears_its_marker_and_a_dead_one_is_named(pipeline: Pipeline) -> None:
    """A failed staging build is not "in progress" (the load fails at once); a marker left by a dead process is
    named in the load's failure once it is older than an hour."""
    _land_customers(pipeline.store, DAY1, 0, 10)
    assert pipeline.run_day(DAY1).success
    pipeline.store.delete(layout.staging_manifest_key("customers", DAY1))
    stale = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
    pipeline.store.put_bytes(
        layout.staging_build_marker_key("customers", DAY1), f'{{"started_at": "{stale}"}}'.encode()
    )
    load = pipeline.run_day(DAY1, selection=["warehouse/customers"])
    assert not load.success
    assert "never finished" in _failures(load)["warehouse/customers"]

    # A build whose code fails removes its marker: nothing waits for it.
    def broken(*_: object) -> None:
        raise RuntimeError("disk full")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(staging, "snapshot_basis", broken)
        with pytest.raises(RuntimeError, match="disk full"):
            staging.build_staging(pipeline.store, CUSTOMERS, DAY1, first_day=DAY1)
    assert staging.staging_build_started(pipeline.store, CUSTOMERS, DAY1) is None
