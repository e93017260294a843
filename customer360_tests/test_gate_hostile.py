"""The gate in a hostile world (issue 12): each test is one broken promise of the raw landing contract.

Named by the issue's item number, so the closing note can list them: corrections landing mid-gate (1),
names that collide or do not fit (2, 7, 9), files that are not the lake's to keep (5), names and special
files that crashed or hung the gate (8), a day of many files (11), an endpoint that never answers (12),
files deleted upstream mid-gate (16). Item 6 (a revert is the current fact) is in ``test_ledger.py``;
the odd names of item 9 are also cases of the corpus (``corpus/__init__.py``, ``test_gate_corpus.py``).
Both lake backends wherever both can hold the case; a local folder alone can hold symlinks, FIFOs and
names that are not UTF-8.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from customer360.cli import main
from customer360.contracts import DATASETS
from customer360.defs.checks import run_clean_checks
from customer360.defs.keys import ROW_ACCOUNTING_CHECK
from customer360.defs.resources.lake import open_lake
from customer360.defs.sensors.raw_sensor import RawCursor, RawSensorSettings, plan_tick
from customer360.lake.ledger import ARCHIVED, REJECTED, VANISHED, Ledger, current_archive_versions
from customer360.lake.local import LocalLakeStore
from customer360.lake.s3 import LakeRequestError, S3Settings
from customer360.lake.store import DeleteOutcome, LakeStore
from customer360.settings import S3_CONNECT_TIMEOUT_ENV as CONNECT_TIMEOUT_ENV
from customer360.settings import S3_MAX_ATTEMPTS_ENV as MAX_ATTEMPTS_ENV
from customer360.settings import S3_READ_TIMEOUT_ENV as READ_TIMEOUT_ENV
from customer360.steps.clean import LEDGER_ENTRY_KEY, SOURCE_NAME_KEY, clean_partition, read_clean
from customer360.steps.gate import CRASH_POINTS, GateRun, run_gate
from customer360.steps.unroutable import reject_unroutable
from customer360_tests.corpus import DAY, customers_csv, land

CUSTOMERS = DATASETS["customers"]
DAY_FOLDER = f"raw/customers/{DAY}/"


def gate(lake: LakeStore, **kwargs: Any) -> GateRun:
    run = run_gate(lake, CUSTOMERS, DAY, **kwargs)
    assert not run.errors, run.errors
    return run


def entries(lake: LakeStore) -> list[Any]:
    return Ledger(lake).entries("customers", DAY)


def upstream_delete(lake: LakeStore, key: str) -> None:
    if isinstance(lake, LocalLakeStore):
        Path(lake.root, *key.split("/")).unlink()
    else:
        lake.client.delete_object(Bucket=lake.bucket, Key=key)  # type: ignore[attr-defined]


def later_s3_second(lake: LakeStore) -> None:
    """S3's LastModified has whole seconds: the same bytes put again within one are one arrival to anyone."""
    if not isinstance(lake, LocalLakeStore):
        time.sleep(1.05)


# ---------------------------------------------------------------------------------------------------
# Item 1: a correction written while the gate holds a file is never deleted unseen
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("point", [p for p in CRASH_POINTS if p != "reported"])
def test_item1_a_correction_landing_while_the_gate_holds_the_file_is_left_for_the_next_run(
    lake: LakeStore, point: str
) -> None:
    key = f"{DAY_FOLDER}h.csv"
    version_a, version_b = customers_csv(3).encode(), customers_csv(4).encode()
    land(lake, key, version_a)
    corrected: list[bool] = []

    def upstream_corrects(step: str, raw_key: str) -> None:
        if step == point and not corrected:
            corrected.append(True)
            land(lake, key, version_b)  # S3: a PUT over the key; a folder: an atomic rename over the name

    (first,) = gate(lake, fault=upstream_corrects).files

    assert first.outcome == ARCHIVED and lake.read_bytes(str(first.destination_key)) == version_a
    assert first.left_in_raw, "the gate says it left the newer version"
    assert lake.read_bytes(key) == version_b, "the correction is still in raw/, not deleted unseen"
    (second,) = gate(lake).files
    assert second.outcome == ARCHIVED and second.corrects == first.destination_key
    assert lake.read_bytes(str(second.destination_key)) == version_b
    assert not list(lake.list("raw/"))
    clean_partition(lake, CUSTOMERS, DAY)
    assert read_clean(lake, CUSTOMERS, DAY).num_rows == 4, "clean serves the correction"


def test_item1_the_raw_delete_is_conditional_on_the_version_admitted(lake: LakeStore) -> None:
    """The store's own guarantee, at the worst instant: a new version lands between its check and its delete."""
    key = f"{DAY_FOLDER}h.csv"
    land(lake, key, b"version A\n")
    admitted = lake.head(key)
    assert admitted is not None
    if isinstance(lake, LocalLakeStore):
        real_rename = os.rename

        def rename_after_upstream(source: Any, target: Any, *args: Any, **kwargs: Any) -> None:
            os.rename = real_rename  # once: upstream's own replace and every later rename are real
            land(lake, key, b"version B\n")  # lands just before the store moves the name aside
            real_rename(source, target, *args, **kwargs)

        os.rename = rename_after_upstream
        try:
            outcome = lake.delete_if_unchanged(key, admitted.etag)
        finally:
            os.rename = real_rename
    else:
        events = lake.client.meta.events  # type: ignore[attr-defined]

        def put_before_delete(**_: Any) -> None:
            events.unregister("before-call.s3.DeleteObject", put_before_delete)
            land(lake, key, b"version B\n")  # reaches S3 after the store's HEAD, before its DeleteObject

        events.register("before-call.s3.DeleteObject", put_before_delete)
        outcome = lake.delete_if_unchanged(key, admitted.etag)

    assert outcome is DeleteOutcome.CHANGED
    assert lake.read_bytes(key) == b"version B\n", "S3 If-Match / the inode check kept the new version"
    current = lake.head(key)
    assert current is not None and lake.delete_if_unchanged(key, current.etag) is DeleteOutcome.DELETED
    assert lake.delete_if_unchanged(key, current.etag) is DeleteOutcome.MISSING


# ---------------------------------------------------------------------------------------------------
# Item 2: one clean file per archived file, bounded names, and row accounting that names the cause
# ---------------------------------------------------------------------------------------------------


def test_item2_names_that_slug_alike_keep_one_clean_file_each(lake: LakeStore) -> None:
    land(lake, f"{DAY_FOLDER}crm part.csv", customers_csv(30).encode())
    land(lake, f"{DAY_FOLDER}crm_part.csv", customers_csv(40).encode())
    gate(lake)

    result = clean_partition(lake, CUSTOMERS, DAY)

    assert len({f.clean_key for f in result.files}) == 2
    assert read_clean(lake, CUSTOMERS, DAY).num_rows == 70, "no file overwrote the other"
    accounting = next(o for o in run_clean_checks(lake, CUSTOMERS, DAY) if o.name == ROW_ACCOUNTING_CHECK)
    assert accounting.passed, accounting.description
    names = set()
    for clean in result.files:
        metadata = pq.read_schema(_local(lake, clean.clean_key)).metadata
        names.add(metadata[SOURCE_NAME_KEY].decode())
    assert names == {"crm part.csv", "crm_part.csv"}, "the original names are in each file's metadata"


def test_item2_a_250_character_name_is_cleaned_under_a_bounded_name_on_every_replay(lake: LakeStore) -> None:
    name = "c" * 246 + ".csv"
    land(lake, DAY_FOLDER + name, customers_csv(5).encode())
    gate(lake)
    for _ in range(2):  # a replay too
        (clean,) = clean_partition(lake, CUSTOMERS, DAY).files
        assert max(len(s) for s in clean.clean_key.split("/")) <= 120
        assert clean.source_name == name
    assert read_clean(lake, CUSTOMERS, DAY).num_rows == 5
    (entry,) = entries(lake)
    metadata = pq.read_schema(_local(lake, clean.clean_key)).metadata
    assert (metadata[SOURCE_NAME_KEY].decode(), metadata[LEDGER_ENTRY_KEY].decode()) == (name, entry.entry_id)


def test_item2_row_accounting_names_the_file_and_the_cause(lake: LakeStore) -> None:
    land(lake, f"{DAY_FOLDER}crm part.csv", customers_csv(30).encode())
    land(lake, f"{DAY_FOLDER}crm_part.csv", customers_csv(40).encode())
    gate(lake)
    result = clean_partition(lake, CUSTOMERS, DAY)
    lost = next(f for f in result.files if f.source_name == "crm_part.csv")
    lake.delete(lost.clean_key)

    accounting = next(o for o in run_clean_checks(lake, CUSTOMERS, DAY) if o.name == ROW_ACCOUNTING_CHECK)

    assert not accounting.passed
    assert "crm_part.csv: no clean file" in str(accounting.description)
    (mismatch,) = accounting.metadata["mismatched_files"]  # type: ignore[misc]
    assert mismatch["source_name"] == "crm_part.csv" and mismatch["archived"] == 40


def _local(lake: LakeStore, key: str) -> Any:
    if isinstance(lake, LocalLakeStore):
        return lake.local_path(key)
    import io

    return io.BytesIO(lake.read_bytes(key))


# ---------------------------------------------------------------------------------------------------
# Item 5: the archive holds bytes the lake owns; links and special files are refused, never opened
# ---------------------------------------------------------------------------------------------------


def test_item5_an_upstream_writer_still_appending_never_changes_the_archive(local_lake: LocalLakeStore) -> None:
    key = f"{DAY_FOLDER}activity.csv"
    first_rows = customers_csv(20).encode()
    land(local_lake, key, first_rows)
    writer = local_lake.local_path(key).open("ab")  # upstream still holds the file open
    more = b"".join(line + b"\n" for line in customers_csv(25).encode().splitlines()[21:])

    def append_after_read(step: str, raw_key: str) -> None:
        if step == "verified":
            writer.write(more[: len(more) // 2])
            writer.flush()

    try:
        (first,) = gate(local_lake, fault=append_after_read).files
        writer.write(more[len(more) // 2 :])  # and after the gate, too
        writer.flush()
    finally:
        writer.close()

    (entry,) = entries(local_lake)
    archived = local_lake.read_bytes(str(first.destination_key))
    assert archived == first_rows and hashlib.sha256(archived).hexdigest() == entry.sha256
    assert entry.rows == 20
    assert os.stat(local_lake.local_path(str(first.destination_key))).st_nlink == 1, "no inode shared"
    assert first.left_in_raw and local_lake.read_bytes(key) == first_rows + more, "what it became waits in raw/"
    (second,) = gate(local_lake).files
    assert second.outcome == ARCHIVED and second.corrects == first.destination_key
    assert local_lake.read_bytes(str(first.destination_key)) == first_rows, "the first version never changed"
    clean_partition(local_lake, CUSTOMERS, DAY)
    assert read_clean(local_lake, CUSTOMERS, DAY).num_rows == 25


def _gate_with_watchdog(lake: LakeStore, seconds: float = 120) -> GateRun:
    """The gate in a thread: a gate that blocks (on a FIFO) fails the test instead of hanging the suite."""
    runs: list[GateRun] = []
    worker = threading.Thread(target=lambda: runs.append(run_gate(lake, CUSTOMERS, DAY)), daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), "the gate is blocked"
    (run,) = runs
    return run


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """Files outside the lake that a link in raw/ points at: they must be neither read nor removed."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.csv").write_bytes(customers_csv(9).encode())
    return folder


def test_item5_links_fifos_sockets_devices_and_empty_folders_in_raw_are_rejected_unopened(
    local_lake: LocalLakeStore, outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    day = local_lake.root / "raw" / "customers" / DAY.isoformat()
    day.mkdir(parents=True)
    (day / "link.csv").symlink_to(outside / "secret.csv")
    (day / "folder-link").symlink_to(outside)
    os.mkfifo(day / "pipe.csv")
    monkeypatch.chdir(day)  # a socket path must be short (108 bytes): bind it relative to its folder
    sock = socket.socket(socket.AF_UNIX)
    sock.bind("socket.csv")
    expected = {
        "link.csv": "symlink",
        "folder-link": "symlink",
        "pipe.csv": "fifo",
        "socket.csv": "socket",
        "folder.csv": "directory",
    }
    (day / "folder.csv").mkdir()  # a folder named like a file, holding nothing
    if os.geteuid() == 0:  # only root may create a device node
        os.mknod(day / "device.csv", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
        expected["device.csv"] = "device"
    land(local_lake, f"{DAY_FOLDER}zz-valid.csv", customers_csv(3).encode())  # listed after all of them

    try:
        run = _gate_with_watchdog(local_lake)
    finally:
        sock.close()

    assert not run.errors, run.errors
    by_name = {e.source_name: e for e in entries(local_lake)}
    assert by_name["zz-valid.csv"].outcome == ARCHIVED, "the gate went on past every one of them"
    for name, kind in expected.items():
        entry = by_name[name]
        assert (entry.outcome, entry.reasons, entry.destination_key) == (REJECTED, ("not_a_regular_file",), None)
        report = json.loads(local_lake.read_bytes(str(entry.report_key)))
        assert report["kind"] == kind and kind in report["failed_checks"][0]["message"]
    link_report = json.loads(local_lake.read_bytes(str(by_name["link.csv"].report_key)))
    assert str(outside / "secret.csv") in json.dumps(link_report), "the report says where the link pointed"
    assert not list(local_lake.list("raw/")) and not day.exists(), "every entry left raw/"
    assert (outside / "secret.csv").read_bytes() == customers_csv(9).encode(), "the link's target untouched"
    assert [o.key for o in local_lake.list("archive/")] == [f"archive/customers/{DAY}/zz-valid.csv"]


def test_item5_a_day_folder_that_is_a_symlink_out_of_the_lake_is_never_followed(
    local_lake: LocalLakeStore, outside: Path
) -> None:
    (local_lake.root / "raw" / "customers").mkdir(parents=True)
    (local_lake.root / "raw" / "customers" / DAY.isoformat()).symlink_to(outside)

    assert gate(local_lake).files == [], "the day's gate does not enter it"
    swept = reject_unroutable(local_lake)

    assert not swept.errors
    (moved,) = swept.files
    assert (moved.outcome, moved.reasons) == (REJECTED, ["not_a_regular_file"])
    assert not list(local_lake.list("raw/")) and not (local_lake.root / "raw" / "customers").exists()
    assert (outside / "secret.csv").read_bytes() == customers_csv(9).encode()
    assert not list(local_lake.list("archive/"))


# ---------------------------------------------------------------------------------------------------
# Item 7: rejected files and reports never collide, and nothing in rejected/ is ever overwritten
# ---------------------------------------------------------------------------------------------------


def test_item7_a_file_named_like_a_report_and_repeated_rejections_never_overwrite_a_report(lake: LakeStore) -> None:
    upstream_report = b'{"written by": "upstream"}'
    land(lake, f"{DAY_FOLDER}crm.csv.report.json", upstream_report)
    gate(lake)
    before = {o.key: lake.read_bytes(o.key) for o in lake.list("rejected/")}
    land(lake, f"{DAY_FOLDER}crm.csv", b"\n\n")  # no header: rejected, with a report of its own
    gate(lake)
    later_s3_second(lake)
    land(lake, f"{DAY_FOLDER}crm.csv", b"\n\n")  # the same bad bytes again: a new arrival, a new report
    gate(lake)

    rejected = entries(lake)
    assert [e.outcome for e in rejected] == [REJECTED] * 3
    keys = [k for e in rejected for k in (e.destination_key, e.report_key)]
    assert len(set(keys)) == 6, "three copies and three reports, no key shared"
    after = {o.key: lake.read_bytes(o.key) for o in lake.list("rejected/")}
    assert set(after) == set(keys)
    assert {k: after[k] for k in before} == before, "nothing written earlier was overwritten"
    upstream_file = next(e for e in rejected if e.source_name == "crm.csv.report.json")
    assert lake.read_bytes(str(upstream_file.destination_key)) == upstream_report
    for entry in rejected:
        report = json.loads(lake.read_bytes(str(entry.report_key)))
        assert (report["entry_id"], report["source_key"]) == (entry.entry_id, entry.raw_key)


# ---------------------------------------------------------------------------------------------------
# Items 8 and 9: names that crashed the gate or could never leave raw/, a FIFO that hung it
# ---------------------------------------------------------------------------------------------------


def test_item8_a_backslash_in_a_name_is_rejected_and_the_files_after_it_still_move(lake: LakeStore) -> None:
    land(lake, f"{DAY_FOLDER}crm\\copy.csv", customers_csv(3).encode())
    land(lake, f"{DAY_FOLDER}zz-after.csv", customers_csv(4).encode())

    gate(lake)

    by_name = {e.source_name: e for e in entries(lake)}
    odd = by_name["crm\\copy.csv"]
    assert (odd.outcome, odd.reasons) == (REJECTED, ("unsafe_key",))
    assert str(odd.destination_key).endswith("/crm%5Ccopy.csv"), "a safe key, escaped so a person reads it"
    assert lake.read_bytes(str(odd.destination_key)) == customers_csv(3).encode()
    assert json.loads(lake.read_bytes(str(odd.report_key)))["source_key"] == f"{DAY_FOLDER}crm\\copy.csv"
    assert by_name["zz-after.csv"].outcome == ARCHIVED
    assert not list(lake.list("raw/"))


def test_item8_a_fifo_in_raw_never_blocks_the_gate(local_lake: LocalLakeStore) -> None:
    day = local_lake.root / "raw" / "customers" / DAY.isoformat()
    day.mkdir(parents=True)
    os.mkfifo(day / "crm.csv")
    land(local_lake, f"{DAY_FOLDER}zz-after.csv", customers_csv(4).encode())

    run = _gate_with_watchdog(local_lake)

    assert not run.errors
    assert sorted((f.outcome, f.reasons) for f in run.files) == [(ARCHIVED, []), (REJECTED, ["not_a_regular_file"])]
    assert not list(local_lake.list("raw/"))


def test_item9_a_local_name_that_is_not_utf8_leaves_raw_with_its_bytes_in_the_report(
    local_lake: LocalLakeStore, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    day = local_lake.root / "raw" / "customers" / DAY.isoformat()
    day.mkdir(parents=True)
    with open(os.path.join(os.fsencode(day), b"crm-\xff.csv"), "wb") as f:
        f.write(customers_csv(3).encode())

    gate(local_lake)

    (entry,) = entries(local_lake)
    assert (entry.outcome, entry.reasons) == (REJECTED, ("unsafe_key",))
    assert str(entry.destination_key).endswith("/crm-%FF.csv")
    report = json.loads(local_lake.read_bytes(str(entry.report_key)))
    assert report["source_key"].encode("utf-8", "surrogateescape").endswith(b"crm-\xff.csv")
    assert not day.exists()
    monkeypatch.setenv("CUSTOMER360_LAKE", local_lake.uri)
    capsys.readouterr()
    assert main(["ledger", "--outcome", "rejected"]) == 0, "the ledger CLI prints it (escaped)"
    assert "crm-\\udcff.csv" in capsys.readouterr().out


def _odd_keys(lake: LakeStore) -> list[str]:
    """Names that used to be skipped forever or to fail every run, landed by upstream in one day's folder."""
    keys = [
        f"{DAY_FOLDER}.tmp-crm.csv",
        f"{DAY_FOLDER}crm\\x.csv",
        DAY_FOLDER + "n" * 251 + ".csv",
        f"{DAY_FOLDER}crm.csv.report.json",
    ]
    if not isinstance(lake, LocalLakeStore):
        keys += [f"{DAY_FOLDER}crm.csv/", DAY_FOLDER, DAY_FOLDER + "m" * 300 + ".csv"]
    for i, key in enumerate(keys):
        land(lake, key, customers_csv(3 + i).encode())
    return keys


def test_item9_odd_names_reach_their_days_gate_through_the_sensor_and_all_leave_raw(lake: LakeStore) -> None:
    keys = _odd_keys(lake)
    now = datetime(DAY.year, DAY.month, DAY.day + 1, 9, tzinfo=UTC)

    plan = plan_tick(lake, RawCursor(), now, RawSensorSettings(), "reject_unroutable_raw_files")

    (request,) = plan.run_requests
    assert (request.partition_key, request.tags["customer360/gate"]) == (DAY.isoformat(), f"customers/{DAY}")
    assert request.tags["customer360/raw_files"] == str(len(keys)), "every odd name is one of the day's files"
    gate(lake)
    assert not list(lake.list("raw/")), "every one ended in archive/ or rejected/"
    outcomes = {e.raw_key: e for e in entries(lake)}
    assert set(outcomes) == set(keys)
    assert outcomes[f"{DAY_FOLDER}.tmp-crm.csv"].outcome == ARCHIVED, "an upstream .tmp- name is a file like any"
    assert outcomes[DAY_FOLDER + "n" * 251 + ".csv"].outcome == ARCHIVED
    for entry in outcomes.values():
        assert entry.outcome == ARCHIVED or lake.head(str(entry.report_key)) is not None
        for key in (entry.destination_key, entry.report_key):
            assert key is None or max(len(s.encode()) for s in key.split("/")) <= 255


def test_item9_the_unroutable_sweep_moves_folder_markers_holding_data(s3_lake: LakeStore) -> None:
    for key in ("raw/", "raw/customers/", "raw/invoices/"):
        land(s3_lake, key, b"data in a folder marker\n")
    land(s3_lake, "raw/customers/2024-01-02/", b"")  # an empty console folder marker: a prefix, not a file

    plan = plan_tick(s3_lake, RawCursor(), datetime(2024, 1, 3, tzinfo=UTC), RawSensorSettings(), "sweep")
    assert [r.job_name for r in plan.run_requests] == ["sweep"]
    run = reject_unroutable(s3_lake)

    assert not run.errors
    assert sorted((f.raw_key, f.outcome) for f in run.files) == [
        ("raw/", REJECTED),
        ("raw/customers/", REJECTED),
        ("raw/invoices/", REJECTED),
    ]
    assert [o.key for o in s3_lake.list("raw/")] == []


# ---------------------------------------------------------------------------------------------------
# Item 11: a day of many files reads its ledger once per run, not once per file
# ---------------------------------------------------------------------------------------------------


class LedgerReadCounter:
    """The lake as the gate sees it, counting reads of ledger entries and listings of ledger prefixes."""

    def __init__(self, inner: LakeStore) -> None:
        self._inner = inner
        self.reads = 0
        self.listings = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def read_bytes(self, key: str) -> bytes:
        self.reads += key.startswith("ledger/")
        return self._inner.read_bytes(key)

    def open_read(self, key: str) -> Any:
        self.reads += key.startswith("ledger/")
        return self._inner.open_read(key)

    def list(self, prefix: str, start_after: str | None = None) -> Iterator[Any]:
        self.listings += prefix.startswith("ledger/")
        return self._inner.list(prefix, start_after)


def test_item11_gating_a_day_reads_its_ledger_once_per_run_not_once_per_file(lake: LakeStore) -> None:
    for i in range(12):
        land(lake, f"{DAY_FOLDER}hour-{i:02d}.csv", customers_csv(1 + i).encode())
    counted = LedgerReadCounter(lake)
    assert len(gate(counted).files) == 12  # type: ignore[arg-type]
    assert (counted.reads, counted.listings) == (0, 1), "an empty day: one listing, no entry read"

    for i in range(12, 24):
        land(lake, f"{DAY_FOLDER}hour-{i:02d}.csv", customers_csv(1 + i).encode())
    counted = LedgerReadCounter(lake)
    run = gate(counted)  # type: ignore[arg-type]

    assert len(run.files) == 12
    assert (counted.reads, counted.listings) == (12, 1), "the 12 entries already there, each read once"
    assert len(run.day_entries) == 24, "the run's view of the day includes its own appends"


# ---------------------------------------------------------------------------------------------------
# Item 12: an endpoint that accepts connections and never answers fails fast, and says which
# ---------------------------------------------------------------------------------------------------


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """An HTTP endpoint that accepts every connection and never sends a byte."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(connection)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        for connection in held:
            connection.close()
        server.close()


def test_item12_an_endpoint_that_never_answers_fails_with_its_name_and_bucket(
    silent_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(READ_TIMEOUT_ENV, "0.5")
    monkeypatch.setenv(CONNECT_TIMEOUT_ENV, "0.5")
    monkeypatch.setenv(MAX_ATTEMPTS_ENV, "2")
    store = open_lake("s3://silent-bucket", endpoint_url=silent_endpoint)

    with pytest.raises(LakeRequestError) as failure:
        list(store.list("raw/"))

    message = str(failure.value)
    assert silent_endpoint in message and "s3://silent-bucket/raw/" in message
    assert "read timeout 0.5 s, 2 attempt(s)" in message


def test_item12_s3_timeouts_and_retries_have_bounded_defaults_and_refuse_nonsense(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in (READ_TIMEOUT_ENV, CONNECT_TIMEOUT_ENV, MAX_ATTEMPTS_ENV):
        monkeypatch.delenv(name, raising=False)
    store = open_lake("s3://any-bucket", endpoint_url="http://127.0.0.1:9")
    config = store.client.meta.config  # type: ignore[attr-defined]
    defaults = S3Settings()
    assert (config.connect_timeout, config.read_timeout) == (defaults.connect_timeout, defaults.read_timeout)
    assert config.retries == {"total_max_attempts": defaults.max_attempts, "mode": "standard"}
    assert defaults.read_timeout * defaults.max_attempts <= 120, "a hung endpoint fails within two minutes"

    monkeypatch.setenv(READ_TIMEOUT_ENV, "soon")
    with pytest.raises(ValueError, match=READ_TIMEOUT_ENV):
        S3Settings.from_env()


# ---------------------------------------------------------------------------------------------------
# Item 16: a file deleted upstream mid-gate is recorded as vanished, not mistaken for another run's move
# ---------------------------------------------------------------------------------------------------


def test_item16_a_file_deleted_upstream_mid_gate_is_ledgered_as_vanished(
    lake: LakeStore,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    capsys: pytest.CaptureFixture[str],
) -> None:
    first, second = f"{DAY_FOLDER}a.csv", f"{DAY_FOLDER}b.csv"
    land(lake, first, customers_csv(3).encode())
    land(lake, second, customers_csv(4).encode())

    def upstream_deletes_b(step: str, key: str) -> None:
        if step == "fetched" and key == first and lake.head(second) is not None:
            upstream_delete(lake, second)

    run = gate(lake, fault=upstream_deletes_b)

    assert [f.raw_key for f in run.of(VANISHED)] == [second]
    assert run.moved_by_another_run == []
    by_key = {e.raw_key: e for e in entries(lake)}
    assert by_key[first].outcome == ARCHIVED
    vanished = by_key[second]
    assert (vanished.outcome, vanished.reasons, vanished.destination_key) == (VANISHED, (VANISHED,), None)
    assert gate(lake).files == [] and len(entries(lake)) == 2, "recorded once"

    monkeypatch.setenv("CUSTOMER360_LAKE", lake.uri)
    if not isinstance(lake, LocalLakeStore):
        monkeypatch.setenv("CUSTOMER360_S3_ENDPOINT_URL", request.getfixturevalue("moto_server"))
    capsys.readouterr()
    assert main(["ledger", "--outcome", "vanished", "--json"]) == 0
    (printed,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert printed["raw_key"] == second


def test_item16_a_file_another_gate_run_moved_is_not_vanished(lake: LakeStore) -> None:
    first, second = f"{DAY_FOLDER}a.csv", f"{DAY_FOLDER}b.csv"
    land(lake, first, customers_csv(3).encode())
    land(lake, second, customers_csv(4).encode())
    inner: list[GateRun] = []

    def second_gate_runs_whole(step: str, key: str) -> None:
        if step == "fetched" and not inner:
            inner.append(gate(lake))

    outer = gate(lake, fault=second_gate_runs_whole)

    assert outer.moved_by_another_run == [second], "it finds the other run's ledger entry"
    assert not outer.of(VANISHED) and not inner[0].of(VANISHED)
    assert sorted((e.raw_key, e.outcome) for e in entries(lake)) == [(first, ARCHIVED), (second, ARCHIVED)]
    assert len(current_archive_versions(entries(lake))) == 2
