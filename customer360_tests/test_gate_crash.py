"""Exactly once under crashes: a gate killed at any step of the move leaves a state the next run completes.

A crash is an exception raised from the gate's fault hook at one of ``CRASH_POINTS`` (after the fetch,
the copy, the rejection report, the verification, the ledger write); the raw delete is the last step, so
a crash after it is a finished move. Then the gate runs again without the fault, on the same lake, and
every raw object must end exactly once in archive/ or rejected/, with one ledger entry per arrival and
no second archive version. Both backends; the gate's functions are called directly (no Dagster run
needed to crash a step), which keeps the 2 x 5 x 2 scenarios to a second or two.
"""

from __future__ import annotations

import pytest

from customer360.contracts import DATASETS
from customer360.lake.ledger import ARCHIVED, REJECTED, Ledger, current_archive_versions
from customer360.lake.store import LakeStore
from customer360.steps.gate import CRASH_POINTS, REPORT_SUFFIX, run_gate
from customer360_tests.corpus import DAY, customers_csv

CUSTOMERS = DATASETS["customers"]
GOOD_KEY = f"raw/customers/{DAY}/crm.csv"
BAD_KEY = f"raw/customers/{DAY}/crm-ragged.csv"
GOOD = customers_csv().encode()
CORRECTED = customers_csv(7).encode()
BAD = customers_csv(extra=["0009-ABCDE,Female"]).encode()


class Crash(Exception):
    """The process dies here."""


def crash_at(point: str, key: str | None = None):  # noqa: ANN201 - a FaultHook
    def fault(step: str, raw_key: str) -> None:
        if step == point and (key is None or raw_key == key):
            raise Crash(f"killed after {step} of {raw_key}")

    return fault


def objects(store: LakeStore, prefix: str) -> dict[str, bytes]:
    return {o.key: store.read_bytes(o.key) for o in store.list(prefix)}


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_a_crash_at_any_step_is_completed_by_the_next_run_exactly_once(lake: LakeStore, point: str) -> None:
    lake.put_bytes(GOOD_KEY, GOOD)
    lake.put_bytes(BAD_KEY, BAD)

    crashed = run_gate(lake, CUSTOMERS, DAY, fault=crash_at(point))
    # "reported" exists only on the rejected path: the accepted file completes in the same run.
    expected_crashes = {BAD_KEY} if point == "reported" else {GOOD_KEY, BAD_KEY}
    assert set(crashed.errors) == expected_crashes
    assert all("Crash" in message for message in crashed.errors.values())
    for key in expected_crashes:
        assert lake.head(key) is not None, "a raw object stays until its copy is verified and ledgered"

    rerun = run_gate(lake, CUSTOMERS, DAY)

    assert not rerun.errors
    assert not list(lake.list("raw/"))
    assert objects(lake, "archive/") == {f"archive/customers/{DAY}/crm.csv": GOOD}, "one archive version, intact"
    entries = Ledger(lake).entries("customers", DAY)
    assert sorted((e.raw_key, e.outcome) for e in entries) == [(BAD_KEY, REJECTED), (GOOD_KEY, ARCHIVED)], (
        "exactly one ledger entry per arrival"
    )
    (bad,) = [e for e in entries if e.outcome == REJECTED]
    rejected = objects(lake, "rejected/")
    copy_key = f"rejected/customers/{DAY}/{bad.entry_id}/crm-ragged.csv"
    assert (bad.destination_key, bad.report_key) == (copy_key, copy_key + REPORT_SUFFIX)
    assert set(rejected) == {copy_key, copy_key + REPORT_SUFFIX}, "one rejected copy and one report"
    assert rejected[copy_key] == BAD
    # A third run has nothing left to do and changes nothing.
    assert run_gate(lake, CUSTOMERS, DAY).files == []
    assert len(Ledger(lake).entries("customers", DAY)) == 2


@pytest.mark.parametrize("point", ["fetched", "copied", "verified", "ledgered"])
def test_a_crash_while_archiving_a_correction_leaves_exactly_two_versions(lake: LakeStore, point: str) -> None:
    lake.put_bytes(GOOD_KEY, GOOD)
    assert not run_gate(lake, CUSTOMERS, DAY).errors
    lake.put_bytes(GOOD_KEY, CORRECTED)  # same key, new content

    assert set(run_gate(lake, CUSTOMERS, DAY, fault=crash_at(point)).errors) == {GOOD_KEY}
    assert not run_gate(lake, CUSTOMERS, DAY).errors

    archived = objects(lake, "archive/")
    assert len(archived) == 2
    assert archived[f"archive/customers/{DAY}/crm.csv"] == GOOD, "the first version is never touched"
    assert sorted(archived.values()) == sorted([GOOD, CORRECTED])
    (current,) = current_archive_versions(Ledger(lake).entries("customers", DAY))
    assert archived[str(current.destination_key)] == CORRECTED
    assert current.corrects == f"archive/customers/{DAY}/crm.csv"
