"""The gate end to end through Dagster, on both lake backends: isolation, the WARN check, the real files."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from customer360.contracts import DATASETS
from customer360.lake.ledger import ARCHIVED, REJECTED, Ledger
from customer360.lake.s3 import S3LakeStore
from customer360.steps.clean import clean_partition, read_clean
from customer360_tests.corpus import CASES, DAY, FORMULA, events_jsonl
from customer360_tests.pipeline_harness import Pipeline, make_pipeline

EXTERNAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "external"
IRANIAN = EXTERNAL / "iranian-churn" / "Customer_Churn.csv"
MLC = EXTERNAL / "orange-mlc-churn" / "churn.all"
IBM = EXTERNAL / "ibm-telco-churn" / "Telco-Customer-Churn.csv"
GATE_ONLY = [f"{zone}/{name}" for name in DATASETS for zone in ("raw", "archive", "rejected")]


@pytest.fixture
def pipeline(lake, tmp_path: Path, request: pytest.FixtureRequest) -> Pipeline:
    endpoint = request.getfixturevalue("moto_server") if isinstance(lake, S3LakeStore) else None
    return make_pipeline(lake, tmp_path, endpoint)


def case(name: str):  # noqa: ANN201 - a corpus Case
    return next(c for c in CASES if c.name == name)


def check_evaluations(result: dg.ExecuteInProcessResult, dataset: str) -> list[dg.AssetCheckEvaluation]:
    return [
        e
        for e in result.get_asset_check_evaluations()
        if e.asset_key == dg.AssetKey(["rejected", dataset]) and e.check_name == "no_rejected_files"
    ]


def test_bad_files_never_block_good_ones_of_the_same_day_or_other_datasets(pipeline: Pipeline) -> None:
    store = pipeline.store
    good = [case("utf8_bom"), case("formula_injection"), case("spaces_and_unicode_in_name")]
    bad = [case("latin1_value"), case("truncated_gzip"), case("impossible_dates"), case("jsonl_array_line")]
    store.put_bytes("raw/activity_logs/2024-01-01/events-good.jsonl", events_jsonl(20).encode())
    for c in good + bad:
        store.put_bytes(c.key, c.data)

    result = pipeline.run_day(DAY, selection=GATE_ONLY)

    assert result.success, "rejections are outcomes, not failures"
    assert not list(store.list("raw/"))
    ledger = {e.raw_key: e for name in DATASETS for e in Ledger(store).entries(name, DAY)}
    for c in good:
        assert ledger[c.key].outcome == ARCHIVED, c.name
        assert store.read_bytes(c.key.replace("raw/", "archive/", 1)) == c.data
    assert ledger["raw/activity_logs/2024-01-01/events-good.jsonl"].outcome == ARCHIVED
    for c in bad:
        assert (ledger[c.key].outcome, ledger[c.key].reasons) == (REJECTED, c.reasons), c.name
    # Downstream gets the good files of every dataset, bad neighbours notwithstanding.
    for dataset in DATASETS.values():
        clean_partition(store, dataset, DAY)
    assert FORMULA in read_clean(store, DATASETS["plans"], DAY)["plan_name"].to_pylist()
    assert read_clean(store, DATASETS["activity_logs"], DAY).num_rows == 20
    assert read_clean(store, DATASETS["customers"], DAY).num_rows == 2 * 5

    # The WARN check fails per partition, naming reasons and report keys, for every dataset with a rejection.
    for name, reason in (
        ("customers", "not_utf8"),
        ("plans", "too_many_bad_rows"),
        ("activity_logs", "not_json_object"),
    ):
        (evaluation,) = check_evaluations(result, name)
        assert not evaluation.passed
        assert evaluation.severity == dg.AssetCheckSeverity.WARN
        assert evaluation.partition == DAY.isoformat()
        reasons = evaluation.metadata["reasons"].value
        assert reason in {r for rs in reasons.values() for r in rs}  # type: ignore[union-attr]
        assert ".report.json" in evaluation.metadata["report_keys"].value  # type: ignore[operator]


def test_check_passes_on_a_clean_day_and_turns_green_once_a_fixed_file_arrives(pipeline: Pipeline) -> None:
    bad = case("short_row")
    pipeline.store.put_bytes(bad.key, bad.data)
    first = pipeline.run_day(DAY, selection=GATE_ONLY)
    (evaluation,) = check_evaluations(first, "customers")
    assert not evaluation.passed
    (plans_evaluation,) = check_evaluations(first, "plans")
    assert plans_evaluation.passed

    # Upstream resends the file fixed, under the same name: the day is healthy again, the rejection stays.
    fixed = bad.data.replace(b"0009-ABCDE,Female,0\n", b"")
    pipeline.store.put_bytes(bad.key, fixed)
    second = pipeline.run_day(DAY, selection=GATE_ONLY)
    (evaluation,) = check_evaluations(second, "customers")
    assert evaluation.passed
    assert evaluation.metadata["resolved_by_a_later_file"].value == 1
    (rejection,) = [e for e in Ledger(pipeline.store).entries("customers", DAY) if e.outcome == "rejected"]
    assert pipeline.store.head(str(rejection.destination_key)) is not None, "the rejected copy stays for the audit"


def test_ibm_file_is_archived_and_foreign_churn_files_are_rejected_naming_missing_fields(pipeline: Pipeline) -> None:
    store = pipeline.store
    store.put_bytes(f"raw/customers/{DAY}/Telco-Customer-Churn.csv", IBM.read_bytes())
    store.put_bytes(f"raw/customers/{DAY}/Customer_Churn.csv", IRANIAN.read_bytes())
    store.put_bytes(f"raw/customers/{DAY}/churn.all", MLC.read_bytes())
    store.put_bytes(f"raw/customers/{DAY}/churn-all.csv", MLC.read_bytes())

    assert pipeline.run_day(DAY, selection=GATE_ONLY).success

    ledger = {e.source_name: e for e in Ledger(store).entries("customers", DAY)}
    assert ledger["Telco-Customer-Churn.csv"].outcome == ARCHIVED
    assert ledger["Telco-Customer-Churn.csv"].rows == 7043
    assert ledger["churn.all"].reasons == ("unsupported_extension",), "as delivered: no accepted extension"
    contract_fields = [f.source_name for f in DATASETS["customers"].header_fields]
    for name in ("Customer_Churn.csv", "churn-all.csv"):
        entry = ledger[name]
        assert entry.reasons == ("missing_required_fields",)
        report = json.loads(store.read_bytes(str(entry.report_key)))
        # Each contract field the file lacks is named (the Iranian file shares only "Churn" with the CRM's).
        assert report["schema_diff"]["missing"] == [f for f in contract_fields if f not in report["header"]]
        assert len(report["schema_diff"]["missing"]) >= len(contract_fields) - 1
        assert "customerID" in report["failed_checks"][0]["message"]
        assert report["action"].startswith("fix the file, or propose a contract change")
    # churn.all has no header: its first record is read as one, and the report shows it as such.
    mlc_report = json.loads(store.read_bytes(str(ledger["churn-all.csv"].report_key)))
    assert mlc_report["header"][:2] == ["KS", " 128"]
