"""The zone asset checks through Dagster: per partition, blocking where downstream must not see a defect.

Every test runs the real Definitions on a real ephemeral Dagster instance, on both lake backends.
"""

from __future__ import annotations

import io
import os
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from customer360 import cli
from customer360.contracts import DATASETS
from customer360.defs.checks import clean_checks, staging_checks
from customer360.lake import layout
from customer360.lake.ledger import ARCHIVED, Ledger, LedgerEntry
from customer360.lake.s3 import S3LakeStore
from customer360.steps.clean import query_quarantine, read_clean
from customer360_tests.pipeline_harness import Pipeline, make_pipeline
from customer360_tests.test_contracts import customers_csv

DAY = date(2024, 1, 1)
ACTIVITY = DATASETS["activity_logs"]
CUSTOMERS = DATASETS["customers"]


@pytest.fixture
def pipeline(lake, tmp_path: Path, request: pytest.FixtureRequest) -> Pipeline:
    endpoint = request.getfixturevalue("moto_server") if isinstance(lake, S3LakeStore) else None
    return make_pipeline(lake, tmp_path, endpoint)


def evaluations(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, dg.AssetCheckEvaluation]:
    key = dg.AssetKey(asset.split("/"))
    return {e.check_name: e for e in result.get_asset_check_evaluations() if e.asset_key == key}


def materialized(result: dg.ExecuteInProcessResult, asset: str) -> bool:
    key = dg.AssetKey(asset.split("/"))
    return any(e.asset_key == key for e in result.get_asset_materialization_events())


def activity_csv(customer_ids: list[str], first_event: int = 0) -> bytes:
    lines = [",".join(ACTIVITY.source_names)]
    for i, customer_id in enumerate(customer_ids):
        n = first_event + i
        lines.append(f"ev-{n:06d},{customer_id},2024-01-01T10:{n % 60:02d}:00Z,sms,out,,,cell-1,false,0.10")
    return ("\n".join(lines) + "\n").encode()


def seed_day(pipeline: Pipeline, *, customers: int = 30) -> list[str]:
    ids = [f"{i:04d}-ABCDE" for i in range(customers)]
    pipeline.store.put_bytes(f"raw/customers/{DAY}/crm.csv", customers_csv(ids))
    plans = ",".join(DATASETS["plans"].source_names) + "\nP1,Basic,Month-to-month,10.00,5,,,2023-01-01,\n"
    pipeline.store.put_bytes(f"raw/plans/{DAY}/plans.csv", plans.encode())
    pipeline.store.put_bytes(f"raw/activity_logs/{DAY}/hour-10.csv", activity_csv(ids + ["9999-ZZZZZ"]))
    return ids


def test_every_clean_and_staging_check_passes_per_partition_on_a_good_day(pipeline: Pipeline) -> None:
    seed_day(pipeline)

    result = pipeline.run_day(DAY)

    assert result.success
    for dataset in DATASETS.values():
        for asset, defs in (
            (f"clean/{dataset.name}", clean_checks(dataset)),
            (f"staging/{dataset.staging_name}", staging_checks(dataset)),
        ):
            found = evaluations(result, asset)
            assert set(found) == {d.name for d in defs}, asset
            for name, evaluation in found.items():
                assert evaluation.partition == DAY.isoformat(), (asset, name)
                advisory = name == "references_customers"  # the unknown customer 9999-ZZZZZ below
                assert evaluation.passed is not advisory, (asset, name, evaluation.description)
    accounting = evaluations(result, "clean/activity_logs")["row_accounting"].metadata
    assert accounting["rows_archived"].value == accounting["rows_clean"].value == 31
    references = evaluations(result, "staging/activity")["references_customers"]
    assert references.severity == dg.AssetCheckSeverity.WARN
    assert references.metadata["failures"].value == 1
    assert references.metadata["failure_cases"].value[0]["value"] == "9999-ZZZZZ"
    assert pipeline.warehouse_rows("activity", DAY) == 31, "an advisory failure does not hold back the load"


def test_a_failed_blocking_clean_check_keeps_staging_from_building(pipeline: Pipeline) -> None:
    seed_day(pipeline)
    # The ledger and the archive disagree: the ledger says 25 rows, the archived file holds 24.
    data = activity_csv([f"{i:04d}-ABCDE" for i in range(24)], first_event=500)
    key = layout.archive_key(ACTIVITY.name, DAY, "hour-11.csv")
    pipeline.store.put_bytes(key, data, create_only=True)
    Ledger(pipeline.store).append(
        LedgerEntry(
            entry_id="a" * 24,
            dataset=ACTIVITY.name,
            partition=DAY.isoformat(),
            raw_key=f"raw/activity_logs/{DAY}/hour-11.csv",
            source_name="hour-11.csv",
            size=len(data),
            sha256="0" * 64,
            etag=None,
            raw_last_modified=None,
            first_seen=datetime.now(UTC).isoformat(),
            outcome=ARCHIVED,
            destination_key=key,
            rows=25,
        )
    )

    result = pipeline.run_day(DAY)

    assert not result.success
    accounting = evaluations(result, "clean/activity_logs")["row_accounting"]
    assert not accounting.passed and accounting.severity == dg.AssetCheckSeverity.ERROR and accounting.blocking
    assert accounting.metadata["rows_unaccounted"].value == 1
    assert accounting.metadata["mismatched_files"].value == [
        {
            "source_name": "hour-11.csv",
            "archive_key": key,
            "clean_file": f"hour-11.csv-{'a' * 24}.parquet",
            "archived": 25,
            "clean": 24,
            "quarantined": 0,
            "cause": "archived 25 rows, clean 24 + quarantined 0",
        }
    ]
    assert "hour-11.csv: archived 25 rows, clean 24 + quarantined 0" in str(accounting.description)
    assert materialized(result, "clean/activity_logs"), "clean is written; its checks say it must not be used"
    assert not materialized(result, "staging/activity")
    assert not materialized(result, "warehouse/activity")
    assert not list(pipeline.store.list(layout.staging_prefix(ACTIVITY.name, DAY)))
    assert materialized(result, "staging/customers"), "other datasets are not held back"


def test_a_failed_blocking_staging_check_keeps_the_warehouse_from_loading(pipeline: Pipeline) -> None:
    seed_day(pipeline)
    assert pipeline.run_day(DAY).success
    # Something outside the pipeline rewrote a clean file: an event type the contract does not know.
    key = next(o.key for o in pipeline.store.list(layout.clean_prefix(ACTIVITY.name, DAY)))
    table = read_clean(pipeline.store, ACTIVITY, DAY)
    types = table["event_type"].to_pylist()
    types[3] = "fax"
    tampered = table.set_column(table.schema.get_field_index("event_type"), "event_type", pa.array(types))
    sink = io.BytesIO()
    pq.write_table(tampered, sink)
    pipeline.store.put_bytes(key, sink.getvalue())
    before = pipeline.warehouse_rows("activity", DAY)

    result = pipeline.run_day(DAY, selection=["staging/activity", "warehouse/activity"])

    assert not result.success
    allowed = evaluations(result, "staging/activity")["allowed_values"]
    assert not allowed.passed and allowed.blocking
    assert allowed.metadata["failures"].value == 1
    (case,) = allowed.metadata["failure_cases"].value
    assert (case["column"], case["value"], case["_source_line"]) == ("event_type", "fax", 5)
    assert case["_source_file"] == layout.archive_key(ACTIVITY.name, DAY, "hour-10.csv")
    assert "fax" in allowed.metadata["failure_sample"].value
    assert not materialized(result, "warehouse/activity")
    assert pipeline.warehouse_rows("activity", DAY) == before


def test_quarantined_rows_are_queryable_and_accounted(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = [f"{i:04d}-ABCDE" for i in range(40)]
    data = customers_csv(ids[:38]).decode() + customers_csv(ids[38:], Churn="Maybe").decode().split("\n", 1)[1]
    pipeline.store.put_bytes(f"raw/customers/{DAY}/crm.csv", data.encode())

    result = pipeline.run_day(
        DAY, selection=["raw/customers", "archive/customers", "rejected/customers", "clean/customers"]
    )

    assert result.success
    rows = query_quarantine(pipeline.store, CUSTOMERS, DAY, rule="allowed_values")
    assert rows.num_rows == 2
    assert rows["_source_line"].to_pylist() == [40, 41]
    assert set(rows["value"].to_pylist()) == {"Maybe"} and set(rows["column"].to_pylist()) == {"churn"}
    assert query_quarantine(pipeline.store, CUSTOMERS, DAY, rule="e164").num_rows == 0
    accounting = evaluations(result, "clean/customers")["row_accounting"]
    assert accounting.passed
    assert (accounting.metadata["rows_clean"].value, accounting.metadata["rows_quarantined"].value) == (38, 2)
    (materialization,) = [
        e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(["clean", "customers"])
    ]
    metadata = materialization.materialization.metadata
    assert metadata["rows_quarantined"].value == 2 and metadata["rule_counts"].value == {"allowed_values": 2}
    assert materialization.materialization.partition == DAY.isoformat()

    if isinstance(pipeline.store, S3LakeStore):
        return  # the CLI reads the lake the environment names; one backend is enough for its output
    monkeypatch.setenv("CUSTOMER360_LAKE", pipeline.store.uri)
    assert cli.main(["quarantine", "--dataset", "customers", "--day", DAY.isoformat(), "--rule", "allowed_values"]) == 0
    out = capsys.readouterr().out
    assert "crm.csv" in out and "'Maybe'" in out and "2 quarantined rows; allowed_values: 2" in out
    assert os.environ["CUSTOMER360_LAKE"] == pipeline.store.uri
    json_rows = cli.main(["quarantine", "--dataset", "customers", "--day", DAY.isoformat(), "--json"])
    assert json_rows == 0 and capsys.readouterr().out.count('"rule": "allowed_values"') == 2


def test_check_cost_stays_small_next_to_the_step(pipeline: Pipeline) -> None:
    from customer360_generator import generate_demo_data

    generate_demo_data(pipeline.store.put_bytes, DAY, 1, seed=4, customers=300, events_per_day=4_000, hours_per_day=4)

    result = pipeline.run_day(DAY)

    assert result.success
    found = evaluations(result, "clean/activity_logs")
    assert found["schema_and_types"].metadata["rows_validated"].value > 1_000
    assert found["schema_and_types"].metadata["validation_seconds"].value < 5
    assert all(e.passed for e in found.values() if e.blocking)
    staged = pc.count_distinct(read_clean(pipeline.store, ACTIVITY, DAY)["event_id"]).as_py()
    assert evaluations(result, "staging/activity")["unique_keys"].metadata["rows_validated"].value == staged
    staging_metadata = next(
        e.materialization.metadata
        for e in result.get_asset_materialization_events()
        if e.materialization.asset_key.to_user_string() == "staging/activity"
    )
    clean_rows = read_clean(pipeline.store, ACTIVITY, DAY).num_rows
    assert staging_metadata["clean_rows_read"].value == clean_rows
    assert staging_metadata["duplicate_rows_dropped"].value == clean_rows - staged
