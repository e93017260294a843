"""``customer360 backfill`` against a real instance built from the project's dagster.yaml in a temp DAGSTER_HOME.

What a user would notice: the command records an asset backfill with exactly the days and assets asked
for, the daemon's backfill loop accepts it and queues one run per range of days in dependency order (the
customers snapshot waits for the plans snapshot it joins), ``--dry-run`` submits nothing, and a bad range or
selection is refused with a message, and a submitted backfill runs every day to success on the code
location's own executor. Every daily asset carries the same single-run backfill policy.
(``test_ui_backfill.py`` runs such a backfill with the real daemon.)
"""

from __future__ import annotations

import logging
import shutil
import threading
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
import pytest

from customer360.cli import main
from customer360.contracts import DATASETS
from customer360.defs.automation import DAILY_BACKFILL_POLICY
from customer360.defs.definitions import build_assets, defs
from customer360.defs.keys import BACKFILL_SOURCE_TAG, UNROUTABLE_KEY
from customer360.lake.ledger import ARCHIVED, REJECTED, Ledger
from customer360.lake.store import LakeStore
from customer360.steps.gate import CRASH_POINTS, REPORT_SUFFIX, GateRun, run_gate
from customer360_tests.corpus import DAY as CORPUS_DAY
from customer360_tests.corpus import customers_csv

if TYPE_CHECKING:  # not exported at dagster's top level
    from dagster._core.execution.backfill import PartitionBackfill

ROOT = Path(__file__).resolve().parents[1]
CUSTOMERS = DATASETS["customers"]
STAGING = [dg.AssetKey(["staging", name]) for name in ("activity", "customers", "plans")]


@pytest.fixture
def dagster_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A temp DAGSTER_HOME holding a copy of the project's dagster.yaml (its paths are relative: cwd = home)."""
    shutil.copy(ROOT / "dagster.yaml", tmp_path / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    (tmp_path / "lake").mkdir()  # what `customer360 init` does
    monkeypatch.setenv("CUSTOMER360_LAKE", str(tmp_path / "lake"))
    monkeypatch.chdir(tmp_path)
    yield tmp_path


def _instance(home: Path) -> dg.DagsterInstance:
    return dg.DagsterInstance.from_config(str(home))


def _run_daemon_backfill_iteration(instance: dg.DagsterInstance) -> None:
    """One iteration of the daemon's backfill loop over the code location loaded in-process.

    Test-only Dagster internals: the daemon's own loop function, so the test sees what ``dagster-daemon``
    would do with the backfill without starting it (and its run subprocesses) for ~20 s.
    """
    from dagster._core.remote_origin import InProcessCodeLocationOrigin
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
    from dagster._daemon.backfill import execute_backfill_iteration

    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(module_name="customer360.defs.definitions", working_directory=str(ROOT)),
        location_name="customer360",
    )
    with WorkspaceProcessContext(instance, InProcessWorkspaceLoadTarget(origin)) as context:
        errors = [e for e in execute_backfill_iteration(context, logging.getLogger("backfill-test")) if e]
    assert not errors, errors


def test_backfill_cli_submits_an_asset_backfill_the_daemon_runs_one_day_at_a_time(
    dagster_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["backfill", "--start", "2024-01-02", "--end", "2024-01-04", "--select", "group:staging"]) == 0
    out = capsys.readouterr().out
    assert "3 day(s)" in out and "staging/customers" in out and "submitted backfill" in out

    instance = _instance(dagster_home)
    try:
        [backfill] = instance.get_backfills()
        assert backfill.is_asset_backfill and backfill.status.value == "REQUESTED"
        assert backfill.tags[BACKFILL_SOURCE_TAG] == "cli"
        assert sorted(backfill.asset_selection) == STAGING
        target = backfill.asset_backfill_data.target_subset
        for key in STAGING:
            assert sorted(target.get_partitions_subset(key).get_partition_keys()) == [
                "2024-01-02",
                "2024-01-03",
                "2024-01-04",
            ], key
        assert backfill.backfill_id in out

        _run_daemon_backfill_iteration(instance)

        # One run, of the three days: the plans snapshot, the root of the selection (the customers
        # snapshot joins plans; activity joins customers), its step walking the days in order. Dagster runs
        # a self-dependent asset alone. Queued by dagster.yaml's QueuedRunCoordinator.
        [run] = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill.backfill_id}))
        assert run.asset_selection == {dg.AssetKey(["staging", "plans"])}
        assert (run.tags["dagster/asset_partition_range_start"], run.tags["dagster/asset_partition_range_end"]) == (
            "2024-01-02",
            "2024-01-04",
        )
        assert run.status == dg.DagsterRunStatus.QUEUED
        assert run.tags[BACKFILL_SOURCE_TAG] == "cli"
    finally:
        instance.dispose()


def _run_backfill_to_the_end(instance: dg.DagsterInstance, backfill_id: str) -> PartitionBackfill:
    """The daemon's backfill loop until the backfill is done; its runs execute as it launches them."""
    for _ in range(20):
        _run_daemon_backfill_iteration(instance)
        backfill = instance.get_backfill(backfill_id)
        assert backfill is not None
        if backfill.status.value != "REQUESTED":
            return backfill
    raise AssertionError(f"backfill {backfill_id} still {backfill.status} after 20 iterations of the daemon's loop")


def test_a_cli_backfill_runs_every_day_to_success_on_the_code_locations_executor(
    dagster_home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Submitted by ``customer360 backfill`` and run: its runs' config is what the code location's executor takes.

    The removed ``--in-process`` option stored run config for Dagster's multi-process executor, which the code
    location's in-process executor refuses (``unexpected config entry "in_process"``): every run of such a
    backfill failed. Here the instance launches each run synchronously in this process as the daemon's backfill
    loop requests it (Dagster's ``SyncInMemoryRunLauncher``, the project's storage otherwise), so the runs'
    stored config is validated and executed exactly as a run worker would.
    """
    import yaml

    from customer360.defs.keys import CLEAN, RAW, zone_key
    from customer360.lake.local import LocalLakeStore
    from customer360_generator import generate_demo_data

    config = yaml.safe_load((dagster_home / "dagster.yaml").read_text())
    config["run_coordinator"] = {"module": "dagster._core.run_coordinator", "class": "DefaultRunCoordinator"}
    config["run_launcher"] = {
        "module": "dagster._core.launcher.sync_in_memory_run_launcher",
        "class": "SyncInMemoryRunLauncher",
    }
    (dagster_home / "dagster.yaml").write_text(yaml.safe_dump(config))
    # The code location over this test's lake (this module imported ``defs`` over the environment's at collection).
    from customer360.defs import definitions
    from customer360.defs.resources.lake import LakeResource
    from customer360.defs.resources.warehouse import WarehouseResource

    lake_location = str(dagster_home / "lake")
    warehouse = WarehouseResource(backend="duckdb", duckdb_path=str(dagster_home / "warehouse.duckdb"))
    lake_defs = definitions.build_definitions(LakeResource(location=lake_location), warehouse)
    monkeypatch.setattr(definitions, "defs", lake_defs)
    days = [date(2024, 1, 2), date(2024, 1, 3)]
    generate_demo_data(
        LocalLakeStore(dagster_home / "lake").put_bytes,
        days[0],
        len(days),
        seed=5,
        customers=60,
        events_per_day=200,
        hours_per_day=2,
    )

    assert (
        main(
            [
                "backfill",
                "--start",
                "2024-01-02",
                "--end",
                "2024-01-03",
                "--select",
                "group:raw or group:archive or group:rejected or group:clean",
            ]
        )
        == 0
    )
    capsys.readouterr()

    instance = _instance(dagster_home)
    try:
        [submitted] = instance.get_backfills()
        backfill = _run_backfill_to_the_end(instance, submitted.backfill_id)
        runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill.backfill_id}))
        assert runs and all(run.status == dg.DagsterRunStatus.SUCCESS for run in runs), [
            (run.run_id, run.status) for run in runs
        ]
        assert backfill.status.value == "COMPLETED_SUCCESS"
        for day in days:
            for key in (zone_key(RAW, CUSTOMERS), zone_key(CLEAN, CUSTOMERS)):
                [record] = instance.fetch_materializations(
                    dg.AssetRecordsFilter(asset_key=key, asset_partitions=[day.isoformat()]), limit=1
                ).records
                assert record.run_id in {run.run_id for run in runs}, (key, day)
        lake = LocalLakeStore(dagster_home / "lake")
        for day in days:  # the runs did the work: each day's activity cleaned, every dataset's raw/ moved
            assert list(lake.list(f"clean/activity_logs/dt={day}/")), day
        assert not [o.key for name in DATASETS for o in lake.list(f"raw/{name}/")]
    finally:
        instance.dispose()


def test_a_full_replay_targets_exactly_the_requested_days_of_every_daily_asset(dagster_home: Path) -> None:
    assert main(["backfill", "--start", "2024-01-02", "--end", "2024-01-03"]) == 0

    instance = _instance(dagster_home)
    try:
        [backfill] = instance.get_backfills()
        graph = defs.resolve_asset_graph()
        daily = {key for key in graph.get_all_asset_keys() if graph.get(key).partitions_def is not None}
        assert set(backfill.asset_selection) == daily
        target = backfill.asset_backfill_data.target_subset
        # Not widened through the mart's 30-day window: its later days are the automation's business.
        for key in daily:
            assert sorted(target.get_partitions_subset(key).get_partition_keys()) == ["2024-01-02", "2024-01-03"], key
        assert not backfill.run_config  # the code location's executor already runs a run's steps in one process
    finally:
        instance.dispose()


def test_dry_run_submits_nothing_and_bad_requests_are_refused(
    dagster_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["backfill", "--start", "2024-01-01", "--end", "2024-01-31", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "31 day(s)" in out and "dry run" in out
    assert "mart/customer_360" in out and "raw/customers" in out
    assert "not daily, left out: rejected/unroutable" in out

    assert main(["backfill", "--start", "2024-01-05", "--end", "2024-01-01"]) == 2
    assert "before --start" in capsys.readouterr().err
    assert main(["backfill", "--start", "2023-12-30", "--end", "2024-01-01"]) == 2
    assert "not within the daily partitions" in capsys.readouterr().err
    assert main(["backfill", "--start", "2024-01-01", "--end", "2024-01-02", "--select", "key:nope/x"]) == 2
    assert "matches no asset" in capsys.readouterr().err
    assert main(["backfill", "--start", "2024-01-01", "--end", "2024-01-02", "--select", "group:(("]) == 2
    assert "--select 'group:(('" in capsys.readouterr().err
    assert main(["backfill", "--start", "2024-01-01", "--end", "2024-01-02", "--select", "rejected/unroutable"]) == 2
    assert "no daily-partitioned asset" in capsys.readouterr().err

    instance = _instance(dagster_home)
    try:
        assert instance.get_backfills() == []
    finally:
        instance.dispose()


def test_every_daily_asset_runs_a_range_in_one_run_without_policy_warnings() -> None:
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        expected = DAILY_BACKFILL_POLICY if node.partitions_def is not None else None
        assert node.backfill_policy == expected, key
    # Dagster warns when one job mixes policies; with one policy nothing warns, whatever is selected.
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        fresh = dg.Definitions(
            assets=build_assets(),
            resources=defs.resources,
            jobs=[
                dg.define_asset_job(
                    "every_daily_asset", selection=(dg.AssetSelection.all() - dg.AssetSelection.assets(UNROUTABLE_KEY))
                )
            ],
        )
        for job_defs, name in (
            (defs, "customer360_pipeline"),
            (defs, "ingest_raw_files"),
            (fresh, "every_daily_asset"),
        ):
            assert job_defs.resolve_job_def(name).backfill_policy == DAILY_BACKFILL_POLICY


# ---------------------------------------------------------------------------------------------------
# A backfill's gate racing the sensor's gate over the same (dataset, day)
# ---------------------------------------------------------------------------------------------------
# Backfill runs do not carry the sensor's ``customer360/gate`` run tag (a backfill's tags are the same for
# every day), so dagster.yaml's one-run-per-(dataset, day) limit does not hold them apart. What makes the
# overlap safe is the gate itself: create-only archive writes that reuse identical bytes, a create-only
# ledger entry whose id is derived from the arrival, and the raw delete last.

GOOD_KEY = f"raw/customers/{CORPUS_DAY}/crm.csv"
BAD_KEY = f"raw/customers/{CORPUS_DAY}/crm-ragged.csv"
GOOD = customers_csv().encode()
BAD = customers_csv(extra=["0009-ABCDE,Female"]).encode()


def _assert_each_arrival_exactly_once(lake: LakeStore) -> None:
    assert not list(lake.list("raw/"))
    assert {o.key: lake.read_bytes(o.key) for o in lake.list("archive/")} == {
        f"archive/customers/{CORPUS_DAY}/crm.csv": GOOD
    }, "one archive object, no second version"
    entries = Ledger(lake).entries("customers", CORPUS_DAY)
    assert sorted((e.raw_key, e.outcome) for e in entries) == [(BAD_KEY, REJECTED), (GOOD_KEY, ARCHIVED)], (
        "exactly one ledger entry per arrival"
    )
    (bad,) = [e for e in entries if e.outcome == REJECTED]
    copy_key = f"rejected/customers/{CORPUS_DAY}/{bad.entry_id}/crm-ragged.csv"
    assert {o.key for o in lake.list("rejected/")} == {copy_key, copy_key + REPORT_SUFFIX}


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_a_second_gate_running_inside_the_first_moves_each_file_once(lake: LakeStore, point: str) -> None:
    lake.put_bytes(GOOD_KEY, GOOD)
    lake.put_bytes(BAD_KEY, BAD)
    other: list[GateRun] = []

    def interleave(step: str, key: str) -> None:
        if step == point and not other:  # the first gate pauses here while a whole second gate runs
            other.append(run_gate(lake, CUSTOMERS, CORPUS_DAY))

    first = run_gate(lake, CUSTOMERS, CORPUS_DAY, fault=interleave)

    assert other, f"no file reached {point}"
    assert not other[0].errors
    assert not first.errors, "the gate that lost the race skips what the other moved, without failing"
    _assert_each_arrival_exactly_once(lake)


def test_two_gates_in_threads_holding_the_same_files_move_each_once(lake: LakeStore) -> None:
    lake.put_bytes(GOOD_KEY, GOOD)
    lake.put_bytes(BAD_KEY, BAD)
    # Both gates have fetched the first listed file before either writes anything: both race to create its
    # copy and its ledger entry. (Only the first: a gate that finds the next file gone never reaches the
    # barrier again.)
    both_fetched = threading.Barrier(2, timeout=30)
    waited = threading.local()

    def hold(step: str, key: str) -> None:
        if step == "fetched" and not getattr(waited, "done", False):
            waited.done = True
            both_fetched.wait()

    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = list(pool.map(lambda _: run_gate(lake, CUSTOMERS, CORPUS_DAY, fault=hold), range(2)))

    assert [run.errors for run in runs] == [{}, {}], "neither gate fails over a file the other moved"
    _assert_each_arrival_exactly_once(lake)


def test_replay_subcommand_runs_each_day_in_order_recorded_in_the_instance(
    dagster_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """``customer360 replay``: one recorded run per day, in order, every zone rebuilt from archive/."""
    from customer360.defs.resources.lake import open_lake
    from customer360_generator import generate_demo_data

    lake_root = dagster_home / "lake"
    monkeypatch.setenv("CUSTOMER360_DUCKDB_PATH", str(tmp_path / "replay.duckdb"))
    store = open_lake(str(lake_root))
    generate_demo_data(store.put_bytes, date(2024, 1, 1), 2, seed=2, customers=100, events_per_day=300, hours_per_day=2)

    assert main(["replay", "--start", "2024-01-01", "--end", "2024-01-02"]) == 0

    printed = capsys.readouterr().out
    assert printed.index("2024-01-01") < printed.index("2024-01-02") and printed.count(" ok ") == 2
    instance = _instance(dagster_home)
    try:
        partitions = sorted(r.tags.get("dagster/partition") for r in instance.get_runs())
    finally:
        instance.dispose()
    assert partitions == ["2024-01-01", "2024-01-02"], "one recorded run per day"
    assert list(store.list("clean/activity_logs/dt=2024-01-02/")) and not list(store.list("raw/activity_logs/"))
