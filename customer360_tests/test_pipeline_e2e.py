"""End to end through Dagster: raw files in, every zone and the warehouse out, on both lake backends."""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path

import dagster as dg
import pyarrow.compute as pc
import pytest

from customer360.contracts import DATASETS
from customer360.defs.definitions import defs as code_location_defs
from customer360.lake import layout
from customer360.lake.s3 import S3LakeStore
from customer360.steps.clean import read_clean, read_quarantine
from customer360_tests.pipeline_harness import Pipeline, make_pipeline

EXTERNAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "external"
IBM_FILE = EXTERNAL / "ibm-telco-churn" / "Telco-Customer-Churn.csv"
DAY = date(2024, 1, 1)


@pytest.fixture
def pipeline(lake, tmp_path: Path, request: pytest.FixtureRequest) -> Pipeline:
    endpoint = request.getfixturevalue("moto_server") if isinstance(lake, S3LakeStore) else None
    return make_pipeline(lake, tmp_path, endpoint)


def _staging_table(pipeline: Pipeline, dataset: str, day: date):
    from customer360.lake.transfer import parquet_keys
    from customer360.steps.clean import _read_parquet  # the same reader the zone uses

    keys = parquet_keys(pipeline.store, layout.staging_prefix(dataset, day))
    import pyarrow as pa

    return _read_parquet(pipeline.store, keys, pa.schema([]))


def test_code_location_loads_with_every_zone_of_every_dataset() -> None:
    dg.Definitions.validate_loadable(code_location_defs)
    graph = code_location_defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    for dataset in DATASETS.values():
        for zone in ("raw", "archive", "rejected", "clean"):
            assert f"{zone}/{dataset.name}" in keys
    assert {"staging/customers", "staging/plans", "staging/activity"} <= keys
    assert {"warehouse/customers", "warehouse/plans", "warehouse/activity"} <= keys
    groups = {graph.get(key).group_name for key in graph.get_all_asset_keys()}
    assert {"raw", "archive", "rejected", "clean", "staging", "warehouse"} <= groups
    for key in graph.get_all_asset_keys() - {dg.AssetKey(["rejected", "unroutable"])}:
        assert isinstance(graph.get(key).partitions_def, dg.DailyPartitionsDefinition), key


def test_ibm_customers_file_reaches_every_zone(pipeline: Pipeline) -> None:
    raw_key = f"raw/customers/{DAY}/Telco-Customer-Churn.csv"
    pipeline.store.put_bytes(raw_key, IBM_FILE.read_bytes())

    assert pipeline.run_day(DAY).success

    assert pipeline.store.head(raw_key) is None, "the raw object leaves raw/ once archived"
    archived = pipeline.store.read_bytes(f"archive/customers/{DAY}/Telco-Customer-Churn.csv")
    assert hashlib.sha256(archived).hexdigest() == hashlib.sha256(IBM_FILE.read_bytes()).hexdigest()
    clean = read_clean(pipeline.store, DATASETS["customers"], DAY)
    assert clean.num_rows == 7043
    assert read_quarantine(pipeline.store, DATASETS["customers"], DAY).num_rows == 0
    blank_totals = clean.filter(pc.is_null(clean["total_charges"]))
    assert blank_totals.num_rows == 11, "the 11 whitespace-only TotalCharges become null, not an error"
    assert set(blank_totals["tenure"].to_pylist()) == {0}
    staging = _staging_table(pipeline, "customers", DAY)
    assert staging.num_rows == 7043
    assert pc.count_distinct(staging["customer_id"]).as_py() == 7043
    assert pipeline.warehouse_rows("customers", DAY) == 7043


@pytest.mark.parametrize(
    ("folder", "file_name", "missing"),
    [
        ("iranian-churn", "Customer_Churn.csv", "customerID"),
        ("orange-mlc-churn", "churn.all", None),
    ],
)
def test_foreign_churn_files_are_rejected_with_a_reason(
    pipeline: Pipeline, folder: str, file_name: str, missing: str | None
) -> None:
    name = file_name if file_name.endswith(".csv") else f"{file_name}.csv"  # churn.all has no extension
    pipeline.store.put_bytes(f"raw/customers/{DAY}/{name}", (EXTERNAL / folder / file_name).read_bytes())

    assert pipeline.run_day(DAY, selection=["raw/customers", "archive/customers", "rejected/customers"]).success

    import json

    from customer360.lake.ledger import Ledger

    (entry,) = Ledger(pipeline.store).entries("customers", DAY)
    assert entry.report_key == f"rejected/customers/{DAY}/{entry.entry_id}/{name}.report.json"
    report = json.loads(pipeline.store.read_bytes(entry.report_key))
    assert report["reasons"] == ["missing_required_fields"]
    assert "customerID" in report["schema_diff"]["missing"]
    if missing:
        assert missing in report["failed_checks"][0]["message"]
    assert not list(pipeline.store.list(f"archive/customers/{DAY}/"))


def test_replaying_a_day_gives_identical_clean_and_staging(pipeline: Pipeline) -> None:
    from customer360_generator import generate_demo_data

    generate_demo_data(pipeline.store.put_bytes, DAY, 2, seed=3, customers=300, events_per_day=2_000, hours_per_day=4)
    second = date(2024, 1, 2)
    assert pipeline.run_day(DAY).success
    assert pipeline.run_day(second).success
    before = {
        name: (read_clean(pipeline.store, DATASETS[name], second), _staging_table(pipeline, name, second))
        for name in DATASETS
    }
    warehouse_before = pipeline.warehouse_rows("activity", second)

    assert pipeline.run_day(second).success

    for name, (clean, staging) in before.items():
        assert read_clean(pipeline.store, DATASETS[name], second).equals(clean), name
        assert _staging_table(pipeline, name, second).equals(staging), name
    assert pipeline.warehouse_rows("activity", second) == warehouse_before > 0


def test_every_archived_row_is_clean_or_quarantined(pipeline: Pipeline) -> None:
    from customer360.lake.ledger import Ledger, current_archive_versions
    from customer360_generator import generate_demo_data

    generate_demo_data(pipeline.store.put_bytes, DAY, 1, seed=11, customers=300, events_per_day=3_000, hours_per_day=6)
    assert pipeline.reject_unroutable().success
    assert pipeline.run_day(DAY).success
    for dataset in DATASETS.values():
        archived = sum(e.rows or 0 for e in current_archive_versions(Ledger(pipeline.store).entries(dataset.name, DAY)))
        clean = read_clean(pipeline.store, dataset, DAY).num_rows
        quarantined = read_quarantine(pipeline.store, dataset, DAY).num_rows
        assert archived == clean + quarantined > 0, dataset.name
    assert not list(pipeline.store.list("raw/")), "every raw object ends in archive/ or rejected/"


def test_one_run_over_a_range_records_each_days_materialization_and_checks_for_that_day(pipeline: Pipeline) -> None:
    """What a backfill or an automation request for several days runs: one run, every step walking the days.

    Each day gets its own materialization (with its own metadata) and its own check results, each result
    about that day's materialization (so the UI shows the day's checks, not "Skipped"); the snapshots are
    built oldest day first.
    """
    from customer360_generator import generate_demo_data

    days = [date(2024, 2, 5), date(2024, 2, 6), date(2024, 2, 7)]
    generate_demo_data(
        pipeline.store.put_bytes, days[0], len(days), seed=11, customers=60, events_per_day=150, hours_per_day=2
    )
    job = pipeline.defs.resolve_job_def("customer360_pipeline")
    result = job.execute_in_process(
        instance=pipeline.instance,
        raise_on_error=False,
        tags={
            "dagster/asset_partition_range_start": days[0].isoformat(),
            "dagster/asset_partition_range_end": days[-1].isoformat(),
        },
    )
    assert result.success
    assert "dagster/partition" not in result.dagster_run.tags

    instance = pipeline.instance
    graph = pipeline.defs.resolve_asset_graph()
    wanted = {day.isoformat() for day in days}
    for key in graph.get_all_asset_keys() - {dg.AssetKey(["rejected", "unroutable"])}:
        records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key), limit=10).records
        assert {r.partition_key for r in records} == wanted, key
        if key.path[0] == "staging":  # the day's own metadata, not the run's
            for record in records:
                files = record.asset_materialization.metadata["files"].value
                assert all(f"dt={record.partition_key}/" in f for f in files), (key, record.partition_key)
    check_keys = list(
        graph.asset_check_keys - {dg.AssetCheckKey(dg.AssetKey(["rejected", "unroutable"]), "no_rejected_files")}
    )
    assert len(check_keys) > 40
    infos = instance.event_log_storage.get_asset_check_partition_info(check_keys)
    by_key: dict[dg.AssetCheckKey, set[str]] = {}
    for info in infos:
        assert info.is_current, (info.check_key, info.partition_key)  # about the day's latest materialization
        assert info.latest_execution_status.value in ("SUCCEEDED", "FAILED"), info
        by_key.setdefault(info.check_key, set()).add(str(info.partition_key))
    assert by_key == {key: wanted for key in check_keys}

    # The warehouse tables and the mart explain themselves: every column described, a preview, a row count.
    for path in (
        ["warehouse", "customers"],
        ["warehouse", "activity"],
        ["mart", "customer_360"],
        ["staging", "customers"],
    ):
        [latest] = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(path), asset_partitions=[days[1].isoformat()]), limit=1
        ).records
        metadata = latest.asset_materialization.metadata
        columns = metadata["dagster/column_schema"].value.columns
        assert columns and all(c.description for c in columns), (path, [c.name for c in columns if not c.description])
        assert metadata["dagster/row_count"].value > 0, path
        if path[0] != "staging":
            assert "| customer_id |" in metadata["preview"].value or "| event_id |" in metadata["preview"].value, path
    # Kinds name the storage in use.
    lake_kind = "s3" if isinstance(pipeline.store, S3LakeStore) else "file"
    assert graph.get(dg.AssetKey(["clean", "customers"])).kinds == {"clean", "parquet", lake_kind}
    assert graph.get(dg.AssetKey(["mart", "customer_360"])).kinds == {"mart", "duckdb"}

    # Oldest day first: each customers snapshot holds every customer of the days before it.
    snapshots = [set(_staging_table(pipeline, "customers", day)["customer_id"].to_pylist()) for day in days]
    assert snapshots[0] and snapshots[0] <= snapshots[1] <= snapshots[2]
