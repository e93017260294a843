"""The file ledger: resends told from corrections, append-only entries, and the ``customer360 ledger`` CLI.

Both backends. Resends and corrections go through the gate and, for corrections, through clean, since
what matters to a user is which version the day's downstream reads.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace

import pytest

from customer360.cli import main
from customer360.contracts import DATASETS
from customer360.lake.ledger import ARCHIVED, DUPLICATE, REJECTED, Ledger, current_archive_versions
from customer360.lake.s3 import S3LakeStore
from customer360.lake.store import LakeStore
from customer360.steps.clean import clean_partition, read_clean
from customer360.steps.gate import run_gate
from customer360_tests.corpus import CASES, DAY, customer_row, customers_csv

CUSTOMERS = DATASETS["customers"]
KEY = f"raw/customers/{DAY}/crm.csv"


def gate(store: LakeStore) -> None:
    assert not run_gate(store, CUSTOMERS, DAY).errors


def archive_keys(store: LakeStore) -> list[str]:
    return [o.key for o in store.list("archive/")]


def test_identical_resend_is_recorded_as_duplicate_not_archived_twice(lake: LakeStore) -> None:
    lake.put_bytes(KEY, customers_csv().encode())
    gate(lake)
    if isinstance(lake, S3LakeStore):
        # S3 knows an object by key, ETag (the MD5) and a LastModified in whole seconds: the same bytes
        # put again within the second are the same object to anyone listing, and one arrival to the gate.
        time.sleep(1.05)
    lake.put_bytes(KEY, customers_csv().encode())  # same key, same bytes, a new arrival
    gate(lake)
    lake.put_bytes(f"raw/customers/{DAY}/crm-resent.csv", customers_csv().encode())  # same bytes, new key
    gate(lake)

    assert archive_keys(lake) == [f"archive/customers/{DAY}/crm.csv"]
    entries = Ledger(lake).entries("customers", DAY)
    assert [e.outcome for e in entries] == [ARCHIVED, DUPLICATE, DUPLICATE]
    assert len({e.entry_id for e in entries}) == 3, "each arrival recorded on its own"
    assert {e.destination_key for e in entries} == {f"archive/customers/{DAY}/crm.csv"}
    assert len(current_archive_versions(entries)) == 1
    clean_partition(lake, CUSTOMERS, DAY)
    assert read_clean(lake, CUSTOMERS, DAY).num_rows == 5, "a resend is not read twice"


def test_correction_is_archived_beside_the_old_version_and_clean_uses_the_newest(lake: LakeStore) -> None:
    lake.put_bytes(KEY, customers_csv(3).encode())
    gate(lake)
    clean_partition(lake, CUSTOMERS, DAY)
    assert read_clean(lake, CUSTOMERS, DAY)["payment_method"].to_pylist() == ["electronic_check"] * 3

    corrected = (
        "\n".join([customers_csv(0).strip(), *(customer_row(i, payment="Mailed check") for i in range(4))]) + "\n"
    )
    lake.put_bytes(KEY, corrected.encode())
    gate(lake)

    old, new = Ledger(lake).entries("customers", DAY)
    assert (old.outcome, new.outcome) == (ARCHIVED, ARCHIVED)
    assert old.destination_key == f"archive/customers/{DAY}/crm.csv"
    assert new.destination_key == f"archive/customers/{DAY}/crm.v-{new.sha256[:12]}.csv"
    assert new.corrects == old.destination_key
    assert lake.read_bytes(str(old.destination_key)) == customers_csv(3).encode(), "the old version is kept"
    assert sorted(archive_keys(lake)) == sorted([str(old.destination_key), str(new.destination_key)])

    clean_partition(lake, CUSTOMERS, DAY)
    clean = read_clean(lake, CUSTOMERS, DAY)
    assert clean["payment_method"].to_pylist() == ["mailed_check"] * 4, "only the newest version is read"
    assert set(clean["_source_file"].to_pylist()) == {new.destination_key}

    # The correction's content arriving again changes nothing current: a resend, not a new fact.
    if isinstance(lake, S3LakeStore):
        time.sleep(1.05)  # else the same arrival again, to S3 (same key, ETag and second)
    lake.put_bytes(KEY, corrected.encode())
    gate(lake)
    assert Ledger(lake).entries("customers", DAY)[-1].outcome == DUPLICATE
    assert len(archive_keys(lake)) == 2


# Issue 12, item 6: v1, a correction v2, then v1 again under the same key. The third arrival is the
# current fact (the latest arrival under a key is, whatever bytes it repeats); clean must serve v1 again.
def test_a_revert_to_an_earlier_version_is_the_current_fact_and_clean_serves_it(lake: LakeStore) -> None:
    v1, v2 = customers_csv(3).encode(), customers_csv(5).encode()
    for version in (v1, v2, v1):
        if isinstance(lake, S3LakeStore):
            time.sleep(1.05)  # each a later S3 object (S3's LastModified has whole seconds)
        lake.put_bytes(KEY, version)
        gate(lake)
        clean_partition(lake, CUSTOMERS, DAY)
        assert read_clean(lake, CUSTOMERS, DAY).num_rows == version.count(b"\n") - 1, "clean serves the latest"

    first, correction, revert = Ledger(lake).entries("customers", DAY)
    assert [e.outcome for e in (first, correction, revert)] == [ARCHIVED, ARCHIVED, ARCHIVED]
    assert revert.destination_key == first.destination_key, "the bytes already archived are reused, not copied"
    assert revert.corrects == correction.destination_key, "traceable: the revert supersedes the correction"
    assert len(archive_keys(lake)) == 2
    (current,) = current_archive_versions(Ledger(lake).entries("customers", DAY))
    assert current.entry_id == revert.entry_id

    # Resending v1 now changes nothing current: a duplicate, and clean still serves v1.
    if isinstance(lake, S3LakeStore):
        time.sleep(1.05)
    lake.put_bytes(KEY, v1)
    gate(lake)
    assert Ledger(lake).entries("customers", DAY)[-1].outcome == DUPLICATE
    clean_partition(lake, CUSTOMERS, DAY)
    assert read_clean(lake, CUSTOMERS, DAY).num_rows == 3


def test_ledger_entries_are_append_only(lake: LakeStore) -> None:
    lake.put_bytes(KEY, customers_csv().encode())
    gate(lake)
    ledger = Ledger(lake)
    (entry,) = ledger.entries("customers", DAY)
    assert ledger.append(replace(entry, outcome=REJECTED)) is False, "an entry is never rewritten"
    assert ledger.entries("customers", DAY) == [entry]


@pytest.fixture
def lake_env(lake: LakeStore, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> LakeStore:
    """CUSTOMER360_LAKE (and the S3 endpoint) pointing at the test lake, as a user's shell would."""
    monkeypatch.setenv("CUSTOMER360_LAKE", lake.uri)
    if isinstance(lake, S3LakeStore):
        monkeypatch.setenv("CUSTOMER360_S3_ENDPOINT_URL", request.getfixturevalue("moto_server"))
    return lake


def test_cli_queries_the_ledger_by_dataset_day_outcome_key_and_reason(
    lake_env: LakeStore, capsys: pytest.CaptureFixture[str]
) -> None:
    lake = lake_env
    for name in ("latin1_value", "short_row", "utf8_bom", "impossible_dates"):
        case = next(c for c in CASES if c.name == name)
        lake.put_bytes(case.key, case.data)
    lake.put_bytes(f"raw/customers/{DAY}/utf8-bom.resent.csv", next(c for c in CASES if c.name == "utf8_bom").data)
    for dataset in DATASETS.values():
        assert not run_gate(lake, dataset, DAY).errors

    def cli(*args: str) -> list[dict[str, object]]:
        capsys.readouterr()
        assert main(["ledger", "--json", *args]) == 0
        return [json.loads(line) for line in capsys.readouterr().out.splitlines()]

    assert len(cli()) == 5
    assert {e["dataset"] for e in cli("--dataset", "plans")} == {"plans"}
    assert len(cli("--dataset", "customers", "--day", DAY.isoformat())) == 4
    assert cli("--day", "2024-01-02") == []
    rejected = cli("--dataset", "customers", "--outcome", "rejected")
    assert sorted(str(e["raw_key"]).rsplit("/", 1)[-1] for e in rejected) == ["latin1-value.csv", "short-row.csv"]
    (duplicate,) = cli("--outcome", "duplicate")
    assert duplicate["raw_key"] == f"raw/customers/{DAY}/utf8-bom.resent.csv"
    assert duplicate["destination_key"] == f"archive/customers/{DAY}/utf8-bom.csv"
    (by_key,) = cli("--key", "short-row")
    assert by_key["reasons"] == ["wrong_field_count"] and by_key["report_key"]
    (by_reason,) = cli("--reason", "too_many_bad_rows")
    assert by_reason["dataset"] == "plans"

    assert main(["ledger", "--outcome", "rejected"]) == 0
    table = capsys.readouterr().out
    assert "latin1-value.csv" in table and "[not_utf8]" in table and "3 entries" in table
