"""The gate against the bad-input corpus, on both lake backends: each case refused with its own reason.

One gate pass per backend (every dataset's day, then the unroutable sweep) handles the whole corpus, so
the S3 run costs a few seconds, not one Dagster run per file; ``test_gate_e2e.py`` covers the same
decisions end to end through Dagster.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from customer360.contracts import DATASETS
from customer360.lake.ledger import ARCHIVED, REJECTED, Ledger, LedgerEntry, query
from customer360.lake.local import LocalLakeStore
from customer360.lake.store import LakeStore
from customer360.steps.clean import clean_partition, read_clean
from customer360.steps.gate import REPORT_SUFFIX, run_gate
from customer360.steps.unroutable import reject_unroutable
from customer360_tests.corpus import ACCEPTED_CASES, CASES, DAY, FORMULA, REJECTED_CASES, Case, land


@dataclass
class GatedCorpus:
    store: LakeStore
    entries: dict[str, LedgerEntry]  # raw key -> its ledger entry
    skipped: list[Case]  # cases whose key this backend cannot hold


def land_and_gate(store: LakeStore) -> GatedCorpus:
    """Land every corpus file the backend can hold in raw/, then run the gate once per dataset and the sweep."""
    skipped = []
    for case in CASES:
        if case.s3_only and isinstance(store, LocalLakeStore):
            # A folder cannot hold a '..' or empty segment; the store refuses before touching the disk.
            with pytest.raises(ValueError, match="invalid lake key"):
                store.put_bytes(case.key, case.data)
            skipped.append(case)
            continue
        # Landed as upstream lands files (S3 PutObject, a file renamed into a folder): some of these keys
        # are ones our own stores would never write.
        land(store, case.key, case.data)
    for dataset in DATASETS.values():
        run = run_gate(store, dataset, DAY)
        assert not run.errors, run.errors
    assert not reject_unroutable(store).errors
    entries = {e.raw_key: e for e in query(Ledger(store))}
    return GatedCorpus(store, entries, skipped)


@pytest.fixture(scope="module", params=["local", "s3"])
def gated(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> GatedCorpus:
    """The corpus gated once per backend; the per-case tests below only read the outcome."""
    from customer360.defs.resources.lake import init_lake, open_lake

    if request.param == "local":
        store = init_lake(str(tmp_path_factory.mktemp("corpus") / "lake"))
    else:
        endpoint = request.getfixturevalue("moto_server")
        store = open_lake("s3://telco-c360-corpus", endpoint_url=endpoint)
        store.client.create_bucket(Bucket="telco-c360-corpus")  # type: ignore[attr-defined]
    return land_and_gate(store)


def test_corpus_is_big_enough_and_every_case_is_named_once() -> None:
    assert len(REJECTED_CASES) >= 30
    assert len({c.name for c in CASES}) == len(CASES)
    assert len({c.key for c in CASES}) == len(CASES)


def test_raw_is_empty_after_one_pass(gated: GatedCorpus) -> None:
    assert [o.key for o in gated.store.list("raw/")] == []
    held = len(CASES) - len(gated.skipped)
    assert len(gated.entries) == held, "exactly one ledger entry per landed file"


@pytest.mark.parametrize("case", REJECTED_CASES, ids=lambda c: c.name)
def test_bad_input_is_rejected_with_its_reason(gated: GatedCorpus, case: Case) -> None:
    if case in gated.skipped:
        return  # asserted in land_and_gate: the local store refuses to create this key at all
    entry = gated.entries[case.key]
    assert entry.outcome == REJECTED
    assert entry.reasons == case.reasons
    assert entry.destination_key is not None and entry.destination_key.startswith("rejected/")
    assert gated.store.read_bytes(entry.destination_key) == case.data, "rejected byte-for-byte"
    assert entry.report_key == entry.destination_key + REPORT_SUFFIX
    # Its own folder, named by its ledger entry; the name escaped and bounded so that any key fits.
    folder = f"rejected/{entry.dataset}/{entry.partition}/" if entry.partition else "rejected/_unroutable/"
    assert entry.destination_key.startswith(f"{folder}{entry.entry_id}/")
    assert all(len(s.encode()) <= 255 for s in entry.report_key.split("/")), "every segment fits a file name"
    report = json.loads(gated.store.read_bytes(entry.report_key))
    assert report["source_key"] == case.key
    assert report["size"] == len(case.data)
    assert report["reasons"] == list(case.reasons)
    assert [c["check"] for c in report["failed_checks"]] == list(case.reasons)
    assert all(c["action"] for c in report["failed_checks"])
    assert report["policy"]["level"] == ("row" if case.reasons == ("too_many_bad_rows",) else "file")
    name = case.key.rsplit("/", 1)[-1]
    assert not name or not list(gated.store.list(f"archive/{case.dataset}/{DAY}/{name}")), "nothing archived"


@pytest.mark.parametrize("case", ACCEPTED_CASES, ids=lambda c: c.name)
def test_awkward_but_valid_input_is_archived_byte_for_byte(gated: GatedCorpus, case: Case) -> None:
    entry = gated.entries[case.key]
    assert (entry.outcome, entry.reasons) == (ARCHIVED, ())
    assert entry.destination_key == case.key.replace("raw/", "archive/", 1)
    assert gated.store.read_bytes(entry.destination_key) == case.data


def test_bad_lines_are_named_in_the_report(gated: GatedCorpus) -> None:
    def failed(name: str) -> dict[str, object]:
        case = next(c for c in CASES if c.name == name)
        report = json.loads(gated.store.read_bytes(str(gated.entries[case.key].report_key)))
        return report["failed_checks"][0]

    latin1 = failed("latin1_value")
    latin1_bytes = next(c for c in CASES if c.name == "latin1_value").data
    assert latin1["samples"] == [
        {
            "line": 7,
            "column": latin1["samples"][0]["column"],
            "offset": latin1_bytes.index(b"\xe8"),
            "bytes": "e8",
            "text": latin1["samples"][0]["text"],
        }
    ]
    assert "Ch\\xe8que" in latin1["samples"][0]["text"]
    assert failed("nul_bytes")["samples"][0]["line"] == 2
    assert failed("short_row")["samples"][0] == {
        "line": 7,
        "expected_fields": 21,
        "actual_fields": 3,
        "text": "0009-ABCDE,Female,0",
    }
    assert failed("giant_single_line")["samples"][0]["line"] == 7
    types = failed("too_many_bad_types")
    assert types["count"] == 4
    assert {"line": 6, "rule": "type", "column": "tenure", "value": "twelve"} in types["samples"]
    assert failed("jsonl_array_line")["samples"][0]["line"] == 6
    assert failed("jsonl_not_object_after_blank_lines")["samples"] == [{"line": 5, "text": '"a string"'}]
    assert failed("gzip_named_csv")["message"].endswith("name it .csv.gz")
    assert "ZIP archive" in failed("xlsx_named_csv")["message"]
    assert failed("semicolon_delimiter")["samples"][0]["missing"][0] == "customerID"


def test_row_threshold_report_says_which_threshold_applied(gated: GatedCorpus) -> None:
    case = next(c for c in CASES if c.name == "impossible_dates")
    report = json.loads(gated.store.read_bytes(str(gated.entries[case.key].report_key)))
    assert report["policy"] == {
        "level": "row",
        "max_bad_row_share": DATASETS["plans"].max_bad_row_share,
        "bad_row_share": 0.6,
        "rows": 5,
        "bad_rows": 3,
        "rows_checked": True,
        "threshold_from": f"contract plans {DATASETS['plans'].version}: max_bad_row_share",
    }
    accepted = next(c for c in CASES if c.name == "few_bad_rows_below_threshold")
    policy = gated.entries[accepted.key].details["policy"]
    assert policy["level"] is None and policy["bad_rows"] == 1 and policy["rows"] == 41  # type: ignore[index]


def test_formula_injection_reaches_clean_verbatim(gated: GatedCorpus) -> None:
    clean_partition(gated.store, DATASETS["plans"], DAY)
    names = read_clean(gated.store, DATASETS["plans"], DAY)["plan_name"].to_pylist()
    assert FORMULA in names, "kept as data, never evaluated or escaped"
    assert "Family,\nplus" in names
