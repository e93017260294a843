"""A backfill launched the way the UI launches it, run by the real daemon: every day's checks recorded for that
day, and the automation carrying the days on to staging, the warehouse and the mart.

The stack is what ``dagster dev`` runs (``customer360_tests.dagster_stack``): ``dagster-webserver`` and the
daemon as processes over a temp instance, runs launched as their own processes. The lake holds two small
demo days whose files the gate has already moved (one ranged run of the gate job, in this process). The test
sends ``launchPartitionBackfill`` to the webserver's GraphQL in both forms the API accepts:

1. the UI's (``assetSelection`` + ``partitionNames``): clean/* for both days, one run. Each day's clean
   checks were evaluated for that day (``assetCheckExecutions`` with the day as partition, and the
   per-partition status the asset page colours), none "Skipped"; then the automation built staging, the
   warehouse and the mart for the two days, and only those days, with their own per-day checks, each day of
   each asset once (it used to rebuild the first day of its own ranged run, and the mart after it, again);
2. ``partitionsByAssets``: every daily asset for the second day. Every asset's day rebuilt by the
   backfill's runs, every check recorded for the day, the mart's 30-day window reached no other day, and the
   automation launched nothing after it (everything it would build was rebuilt, in order, by the backfill);
3. ``customer360 backfill`` (the command line), the warehouse and the mart for the second day: run by the
   daemon like the others, checks recorded for the day, no automation run after it (its old ``--in-process``
   option made such a backfill's runs fail on their run config).

Before the fix, the backfill's runs carried only the partition *range* tags, every check result was stored
with no partition, the day's checks showed "Skipped" and the automation stalled on
``any_deps_blocking_checks_failed``.
"""

from __future__ import annotations

import subprocess
import time
from datetime import date, timedelta
from pathlib import Path

import dagster as dg

from customer360.contracts import DATASETS
from customer360.defs.definitions import build_definitions
from customer360.defs.keys import BACKFILL_SOURCE_TAG, GATE_JOB_NAME
from customer360.defs.resources.lake import LakeResource
from customer360.defs.resources.warehouse import WarehouseResource
from customer360_generator import generate_demo_data
from customer360_tests.dagster_stack import BIN, Stack, dagster_stack, stack_env, wait_for, write_home

START = date(2024, 3, 4)
DAYS = [START + timedelta(days=offset) for offset in range(2)]
BACKFILL_TAG = "dagster/backfill"
AUTOMATION_INTERVAL_SECONDS = 5
QUIET_SECONDS = 3 * AUTOMATION_INTERVAL_SECONDS
IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]
CLEAN = [["clean", name] for name in DATASETS]
DOWNSTREAM = [
    *(["staging", dataset.staging_name] for dataset in DATASETS.values()),
    *(["warehouse", dataset.staging_name] for dataset in DATASETS.values()),
    ["mart", "customer_360"],
]
GATE = [[zone, name] for name in DATASETS for zone in ("raw", "archive", "rejected")]
ALL_DAILY = GATE + CLEAN + DOWNSTREAM


BACKFILLS = """
{ partitionBackfillsOrError { ... on PartitionBackfills { results { id status } } } }
"""

CHECK_EXECUTIONS = """
query Executions($key: AssetKeyInput!, $check: String!, $partition: String) {
  assetCheckExecutions(assetKey: $key, checkName: $check, partition: $partition, limit: 5) {
    status partition runId evaluation { partition }
  }
}
"""

CHECK_STATUSES = """
query Checks($keys: [AssetKeyInput!]) {
  assetNodes(assetKeys: $keys) {
    assetKey { path }
    assetChecksOrError {
      ... on AssetChecks {
        checks {
          name blocking
          partitionStatuses { ... on AssetCheckTimePartitionStatuses { ranges { startKey endKey status } } }
        }
      }
    }
  }
}
"""


def _prepare_lake(home: Path) -> None:
    """Three demo days, gated by one ranged run of the gate job recorded in the stack's instance."""
    env = stack_env(home)
    lake = LakeResource(location=env["CUSTOMER360_LAKE"])
    warehouse = WarehouseResource(backend="duckdb", duckdb_path=env["CUSTOMER360_DUCKDB_PATH"])
    generate_demo_data(
        lake.store().put_bytes, START, len(DAYS), seed=3, customers=100, events_per_day=300, hours_per_day=2
    )
    gate = build_definitions(lake, warehouse).resolve_job_def(GATE_JOB_NAME)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        result = gate.execute_in_process(
            instance=instance,
            tags={
                "dagster/asset_partition_range_start": DAYS[0].isoformat(),
                "dagster/asset_partition_range_end": DAYS[-1].isoformat(),
            },
        )
        assert result.success
        # The ranged run recorded the rejected files' check for every day, each for its own day.
        for day in DAYS:
            for name in DATASETS:
                [execution] = instance.event_log_storage.get_asset_check_execution_history(
                    dg.AssetCheckKey(dg.AssetKey(["rejected", name]), "no_rejected_files"),
                    limit=1,
                    partition_filter=_partition(day),
                )
                assert execution.partition == day.isoformat()


def _partition(day: date):  # noqa: ANN202 - Dagster's internal filter type
    from dagster._core.storage.event_log.base import PartitionKeyFilter

    return PartitionKeyFilter(key=day.isoformat())


def _key(path: list[str]) -> dict:
    return {"path": path}


def _materialized_days(instance: dg.DagsterInstance, path: list[str]) -> dict[str, str]:
    """Day -> id of the run of the latest materialization of that day of the asset."""
    days = {}
    for record in instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(path)), limit=1000
    ).records:
        days.setdefault(str(record.partition_key), record.run_id)
    return days


def _builds_since(instance: dg.DagsterInstance, path: list[str], storage_id: int) -> dict[str, list[str]]:
    """Day -> ids of the runs that materialized that day of the asset after ``storage_id``, oldest first."""
    builds: dict[str, list[str]] = {}
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(path), after_storage_id=storage_id), limit=1000, ascending=True
    ).records
    for record in records:
        builds.setdefault(str(record.partition_key), []).append(record.run_id)
    return builds


def _latest_storage_id(instance: dg.DagsterInstance) -> int:
    return max(
        (
            record.storage_id
            for path in ALL_DAILY
            for record in instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=dg.AssetKey(path)), limit=1
            ).records
        ),
        default=0,
    )


def _settle(stack: Stack, wanted: dict[tuple[str, ...], set[str]]) -> None:
    """Wait until no backfill or run is in flight and every wanted asset has the wanted days."""

    def settled() -> bool:
        stack.assert_running()
        statuses = [b["status"] for b in stack.graphql(BACKFILLS)["partitionBackfillsOrError"]["results"]]
        if any(status in ("REQUESTED", "CANCELING") for status in statuses):
            return False
        with stack.instance() as instance:
            if instance.get_runs(filters=dg.RunsFilter(statuses=IN_FLIGHT)):
                return False
            return all(set(_materialized_days(instance, list(path))) >= days for path, days in wanted.items())

    def quiet() -> bool:
        # Settled, and still so after three automation ticks without a new run (a re-run the automation
        # requested late would show up here; the tests below then say it was redundant).
        if not settled():
            return False
        with stack.instance() as instance:
            before = len(instance.get_run_ids())
        time.sleep(QUIET_SECONDS)
        with stack.instance() as instance:
            return settled() and len(instance.get_run_ids()) == before

    try:
        wait_for("the backfills and the automation to settle", quiet, timeout=600, interval=2)
    except AssertionError as error:
        raise AssertionError(f"{error}\n{stack.logs()}") from error


def _assert_checks_of_days(stack: Stack, paths: list[list[str]], days: list[date]) -> None:
    """Every check of every asset was evaluated for each day, as that day; blocking ones passed."""
    nodes = stack.graphql(CHECK_STATUSES, {"keys": [_key(p) for p in paths]})["assetNodes"]
    assert len(nodes) == len(paths)
    for node in nodes:
        checks = node["assetChecksOrError"]["checks"]
        assert checks or node["assetKey"]["path"][0] in ("raw", "archive"), node["assetKey"]
        for check in checks:
            for day in days:
                [latest, *_] = stack.graphql(
                    CHECK_EXECUTIONS, {"key": node["assetKey"], "check": check["name"], "partition": day.isoformat()}
                )["assetCheckExecutions"]
                assert latest["partition"] == latest["evaluation"]["partition"] == day.isoformat()
                assert latest["status"] in ("SUCCEEDED", "FAILED"), (node["assetKey"], check["name"], latest)
                if check["blocking"]:
                    assert latest["status"] == "SUCCEEDED", (node["assetKey"], check["name"], day)
            # What the asset page's partition bar shows: each of the days evaluated, none skipped.
            for day in days:
                [status] = [
                    r["status"]
                    for r in check["partitionStatuses"]["ranges"]
                    if r["startKey"] <= day.isoformat() <= r["endKey"]
                ]
                assert status in ("SUCCEEDED", "FAILED"), (node["assetKey"], check["name"], day, status)


def test_a_ui_backfill_records_each_days_checks_and_the_automation_carries_the_days_to_the_mart(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    write_home(home)
    _prepare_lake(home)
    days = {d.isoformat() for d in DAYS}
    fast = {
        "CUSTOMER360_AUTOMATION_INTERVAL_SECONDS": str(AUTOMATION_INTERVAL_SECONDS),
        "CUSTOMER360_SENSOR_INTERVAL_SECONDS": "5",
    }
    with dagster_stack(home, daemon=False, extra_env=fast) as stack:
        with stack.instance() as instance:
            prepared = _latest_storage_id(instance)
        # 1. The UI's form, clean/* for both days, submitted before the daemon starts so that the
        #    automation's first tick already sees those days as a backfill in progress.
        first = stack.launch_backfill(
            {
                "assetSelection": [_key(p) for p in CLEAN],
                "partitionNames": sorted(days),
                "fromFailure": False,
                "tags": [],
            },
        )
        stack.start_daemon()
        _settle(stack, {tuple(p): days for p in DOWNSTREAM})
        with stack.instance() as instance:
            [backfill] = [b for b in instance.get_backfills() if b.backfill_id == first]
            assert backfill.status.value == "COMPLETED_SUCCESS"
            ours = {r.run_id for r in instance.get_runs(filters=dg.RunsFilter(tags={BACKFILL_TAG: first}))}
            assert len(ours) == 1, "clean/* of both days: one run"
            for path in CLEAN:
                assert set(_materialized_days(instance, path).values()) == ours, path
            for path in DOWNSTREAM:
                built = _materialized_days(instance, path)
                assert set(built) == days, (path, sorted(built))  # only the days with data
                assert not set(built.values()) & ours, f"{path} was built by the automation"
                # Once: no re-run of a day whose inputs had not changed since it was built (the automation
                # used to rebuild the first day of a ranged run, and the mart's days after it, once more).
                builds = _builds_since(instance, path, prepared)
                assert all(len(runs) == 1 for runs in builds.values()), (path, builds)
            automation_runs = len(instance.get_runs()) - len(ours) - 1  # minus the prepared gate run
        _assert_checks_of_days(stack, CLEAN + DOWNSTREAM, DAYS)

        # 2. The partitionsByAssets form: every daily asset, the second day. What exists is read before the launch:
        #    under load the daemon has created the backfill's first run before a read right after it.
        with stack.instance() as instance:
            before = {tuple(p): _materialized_days(instance, p)[DAYS[1].isoformat()] for p in ALL_DAILY}
            runs_before_second = set(instance.get_run_ids())
        second = stack.launch_backfill(
            {
                "partitionsByAssets": [
                    {
                        "assetKey": _key(p),
                        "partitions": {"range": {"start": DAYS[1].isoformat(), "end": DAYS[1].isoformat()}},
                    }
                    for p in ALL_DAILY
                ]
            },
        )

        def rebuilt() -> bool:
            with stack.instance() as instance:
                return all(_materialized_days(instance, p)[DAYS[1].isoformat()] != before[tuple(p)] for p in ALL_DAILY)

        wait_for("the whole-graph backfill of one day", rebuilt, timeout=600, interval=2)
        _settle(stack, {})
        with stack.instance() as instance:
            [backfill] = [b for b in instance.get_backfills() if b.backfill_id == second]
            assert backfill.status.value == "COMPLETED_SUCCESS"
            whole_graph_runs = {r.run_id for r in instance.get_runs(filters=dg.RunsFilter(tags={BACKFILL_TAG: second}))}
            for path in ALL_DAILY:
                built = _materialized_days(instance, path)
                assert built[DAYS[1].isoformat()] in whole_graph_runs, path
                assert set(built) == days, (path, sorted(built))  # the mart's window reached no other day
            # The backfill rebuilt every asset of the day in order: nothing was left for the automation to redo.
            assert set(instance.get_run_ids()) - runs_before_second == whole_graph_runs
        _assert_checks_of_days(stack, ALL_DAILY, [DAYS[1]])

        # 3. ``customer360 backfill`` (the CLI records the same kind of backfill): the warehouse and the mart.
        warehouse = [p for p in DOWNSTREAM if p[0] in ("warehouse", "mart")]
        with stack.instance() as instance:
            before = {tuple(p): _materialized_days(instance, p)[DAYS[1].isoformat()] for p in warehouse}
            runs_before_third = set(instance.get_run_ids())
        day = DAYS[1].isoformat()
        cli = subprocess.run(
            [
                str(BIN / "customer360"),
                "backfill",
                "--start",
                day,
                "--end",
                day,
                "--select",
                "group:warehouse or group:mart",
            ],
            cwd=home,
            env=stack.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert cli.returncode == 0, cli.stderr
        _settle(stack, {})
        with stack.instance() as instance:
            [third] = [b for b in instance.get_backfills() if b.tags.get(BACKFILL_SOURCE_TAG) == "cli"]
            assert third.status.value == "COMPLETED_SUCCESS"
            runs = {r.run_id for r in instance.get_runs(filters=dg.RunsFilter(tags={BACKFILL_TAG: third.backfill_id}))}
            for path in warehouse:
                assert _materialized_days(instance, path)[day] in runs - {before[tuple(path)]}, path
            assert set(instance.get_run_ids()) - runs_before_third == runs, "the automation re-ran what was rebuilt"
        _assert_checks_of_days(stack, warehouse, [DAYS[1]])
    print(
        f"\nclean backfill: 1 run, then {automation_runs} automation runs; "
        f"whole graph, one day: {len(whole_graph_runs)} runs"
    )
