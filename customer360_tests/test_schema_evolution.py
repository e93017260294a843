"""Schema evolution: additive layouts flow to the warehouse, unknown fields are kept, breaking changes are rejected."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from customer360.contracts import DATASETS
from customer360.lake import layout
from customer360.lake.ledger import Ledger
from customer360.lake.s3 import S3LakeStore
from customer360.lake.transfer import fetch_many, scratch_dir
from customer360.steps.clean import CONTRACT_VERSION_KEY, read_clean
from customer360_tests.pipeline_harness import Pipeline, make_pipeline
from customer360_tests.test_checks import evaluations
from customer360_tests.test_contracts import NEW_LAYOUT, customers_csv

DAY = date(2024, 1, 1)
CUSTOMERS = DATASETS["customers"]
CUSTOMER_ZONES = ["raw/customers", "archive/customers", "rejected/customers", "clean/customers", "staging/customers"]
NEW_COLUMNS = ["plan_id", "email", "msisdn", "updated_at"]


@pytest.fixture
def pipeline(lake, tmp_path: Path, request: pytest.FixtureRequest) -> Pipeline:
    endpoint = request.getfixturevalue("moto_server") if isinstance(lake, S3LakeStore) else None
    return make_pipeline(lake, tmp_path, endpoint)


def test_old_and_new_customer_layouts_mix_within_and_across_days_into_the_warehouse(pipeline: Pipeline) -> None:
    second = DAY + timedelta(days=1)
    new = {"layout": NEW_LAYOUT, "email": "Ann@Example.COM", "updated_at": "2024-01-02T09:00:00+01:00"}
    pipeline.store.put_bytes(f"raw/customers/{DAY}/crm_old.csv", customers_csv(["0001-AAAAA", "0002-AAAAA"]))
    pipeline.store.put_bytes(f"raw/customers/{second}/crm_old.csv", customers_csv(["0003-AAAAA"]))
    pipeline.store.put_bytes(f"raw/customers/{second}/crm_new.csv", customers_csv(["0002-AAAAA", "0004-AAAAA"], **new))
    selection = [*CUSTOMER_ZONES, "warehouse/customers"]

    assert pipeline.run_day(DAY, selection=selection).success
    result = pipeline.run_day(second, selection=selection)

    assert result.success
    assert all(e.passed for e in evaluations(result, "clean/customers").values())
    staging = evaluations(result, "staging/customers")
    assert all(e.passed for e in staging.values() if e.blocking)
    # No plans catalog in this lake: the new layout's plan_id resolves to nothing, which is advisory.
    assert not staging["references_plans"].passed and staging["references_plans"].metadata["failures"].value == 2
    clean = read_clean(pipeline.store, CUSTOMERS, second).sort_by("customer_id")
    assert clean["email"].to_pylist() == ["ann@example.com", None, "ann@example.com"]
    assert clean["msisdn"].to_pylist()[1] is None, "an old-layout file's rows are null in the new columns"
    warehouse = pipeline.warehouse.open(pipeline.store)
    columns = {
        row[0]
        for row in warehouse.query("SELECT column_name FROM information_schema.columns WHERE table_name = 'customers'")
    }
    assert set(NEW_COLUMNS) <= columns, "the warehouse table gained the new layout's columns"
    rows = warehouse.query(
        "SELECT customer_id, email, updated_at IS NULL FROM customers WHERE partition_date = ? ORDER BY customer_id",
        [second],
    )
    assert [tuple(r) for r in rows] == [
        ("0001-AAAAA", None, True),  # carried in the snapshot from the old-layout day
        ("0002-AAAAA", "ann@example.com", False),  # updated by the new-layout file: the newer record wins
        ("0003-AAAAA", None, True),
        ("0004-AAAAA", "ann@example.com", False),
    ]


def test_an_unknown_extra_column_survives_to_clean_and_is_surfaced_as_a_warning(pipeline: Pipeline) -> None:
    data = customers_csv(["0001-AAAAA", "0002-AAAAA"], loyalty_tier="gold")
    pipeline.store.put_bytes(f"raw/customers/{DAY}/crm.csv", data)

    result = pipeline.run_day(DAY, selection=CUSTOMER_ZONES)

    assert result.success, "an unknown field is advisory: nothing is blocked"
    clean = read_clean(pipeline.store, CUSTOMERS, DAY)
    assert [json.loads(v) for v in clean["_rescued_data"].to_pylist()] == [{"loyalty_tier": "gold"}] * 2
    for asset in ("clean/customers", "staging/customers"):
        warning = evaluations(result, asset)["unknown_columns"]
        assert not warning.passed and warning.severity == dg.AssetCheckSeverity.WARN and not warning.blocking
        assert warning.metadata["rescued_columns"].value == ["loyalty_tier"]
        assert "loyalty_tier" in (warning.description or "")


def test_an_unknown_key_appearing_mid_file_in_json_lines_is_rescued(pipeline: Pipeline) -> None:
    activity = DATASETS["activity_logs"]
    base = {
        "event_id": "e1",
        "customer_id": "0001-AAAAA",
        "event_ts": "2024-01-01T10:00:00Z",
        "event_type": "sms",
        "direction": "out",
        "duration_sec": None,
        "data_mb": None,
        "cell_id": "c",
        "roaming": False,
        "charge_amount": "0.10",
    }
    lines = [json.dumps(base), json.dumps({**base, "event_id": "e2", "handset": "X1"})]
    pipeline.store.put_bytes(f"raw/activity_logs/{DAY}/hour.jsonl", ("\n".join(lines) + "\n").encode())

    assert pipeline.run_day(
        DAY, selection=["raw/activity_logs", "archive/activity_logs", "rejected/activity_logs", "clean/activity_logs"]
    ).success

    rescued = read_clean(pipeline.store, activity, DAY).sort_by("event_id")["_rescued_data"].to_pylist()
    assert json.loads(rescued[1]) == {"handset": "X1"}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("missing", "missing_required_fields"),
        ("unparseable", "too_many_bad_rows"),
    ],
)
def test_breaking_changes_reject_the_file_at_the_gate_with_a_schema_diff(
    pipeline: Pipeline, change: str, reason: str
) -> None:
    ids = [f"{i:04d}-AAAAA" for i in range(20)]
    if change == "missing":  # the CRM renamed a required field
        data = customers_csv(ids).replace(b"customerID,", b"customer_ref,", 1)
    else:  # tenure now arrives as text that no longer parses as an integer
        data = customers_csv(ids, tenure="12 months")
    pipeline.store.put_bytes(f"raw/customers/{DAY}/crm.csv", data)

    assert pipeline.run_day(DAY, selection=CUSTOMER_ZONES[:3]).success

    (entry,) = Ledger(pipeline.store).entries("customers", DAY)
    report = json.loads(pipeline.store.read_bytes(str(entry.report_key)))
    assert report["reasons"] == [reason]
    assert not list(pipeline.store.list(layout.archive_key("customers", DAY, "")))
    if change == "missing":
        assert report["schema_diff"]["missing"] == ["customerID"]
        assert report["schema_diff"]["unexpected"] == ["customer_ref"]
    else:
        assert report["rule_counts"] == {"type": 20}
        (failed,) = report["failed_checks"]
        assert failed["samples"][0] == {"line": 2, "rule": "type", "column": "tenure", "value": "12 months"}


def test_the_contract_version_is_recorded_on_every_clean_file(pipeline: Pipeline) -> None:
    pipeline.store.put_bytes(f"raw/customers/{DAY}/a.csv", customers_csv(["0001-AAAAA"]))
    pipeline.store.put_bytes(f"raw/customers/{DAY}/b.csv", customers_csv(["0002-AAAAA"], layout=NEW_LAYOUT))

    assert pipeline.run_day(DAY, selection=CUSTOMER_ZONES[:4]).success

    keys = [o.key for o in pipeline.store.list(layout.clean_prefix("customers", DAY))]
    assert len(keys) == 2
    with scratch_dir() as folder:
        for path in fetch_many(pipeline.store, keys, folder):
            parquet = pq.ParquetFile(path)
            assert parquet.schema_arrow.metadata[CONTRACT_VERSION_KEY] == CUSTOMERS.version.encode()
            assert set(parquet.read(columns=["_contract_version"])["_contract_version"].to_pylist()) == {
                CUSTOMERS.version
            }
